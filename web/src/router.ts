// A tiny history-API router: the app's paths are few and flat.
import { useEffect, useState } from "preact/hooks";

type Listener = () => void;
const listeners = new Set<Listener>();
window.addEventListener("popstate", () => listeners.forEach((listener) => listener()));

export function navigate(path: string, { replace = false } = {}): void {
  if (path === window.location.pathname + window.location.search) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  listeners.forEach((listener) => listener());
}

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const update = () => setPath(window.location.pathname);
    listeners.add(update);
    return () => void listeners.delete(update);
  }, []);
  return path;
}

/** The query string (with its "?"), which changes without a path change on /search. */
export function useSearch(): string {
  const [search, setSearch] = useState(window.location.search);
  useEffect(() => {
    const update = () => setSearch(window.location.search);
    listeners.add(update);
    return () => void listeners.delete(update);
  }, []);
  return search;
}

/** Same-origin links navigate without a reload (modified clicks keep the browser's behaviour). */
export function onLinkClick(event: MouseEvent): void {
  const link = (event.target as Element).closest("a");
  if (!link || link.origin !== window.location.origin || link.target || link.hasAttribute("download")) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
}
