import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

/** The header's navigation behind a "Menu" disclosure button at narrow widths
 * (styles.css shows the button and folds the menu only there; wider, the
 * navigation is always shown and the button hidden). */
export function HeaderMenu({ path, children }: { path: string; children: ComponentChildren }) {
  const [open, setOpen] = useState(false);
  const buttonRef = useRef<HTMLButtonElement>(null);

  // Following a link (or going back) closes the menu; the new page takes focus.
  useEffect(() => setOpen(false), [path]);

  function onKeyDown(event: KeyboardEvent) {
    if (event.key !== "Escape" || !open) return;
    event.preventDefault();
    setOpen(false);
    buttonRef.current?.focus();
  }

  // A link to the page already shown changes no path, so clicks close it too.
  function onMenuClick(event: MouseEvent) {
    if ((event.target as Element).closest("a")) setOpen(false);
  }

  return (
    <>
      <button
        type="button"
        class="menu-toggle"
        ref={buttonRef}
        aria-expanded={open}
        aria-controls="header-menu"
        onClick={() => setOpen(!open)}
        onKeyDown={onKeyDown}
      >
        Menu
      </button>
      <div id="header-menu" class={open ? "header-menu open" : "header-menu"} onKeyDown={onKeyDown} onClick={onMenuClick}>
        {children}
      </div>
    </>
  );
}
