import type { FunctionComponent } from "preact";
import { useEffect, useState } from "preact/hooks";

type Pages = FunctionComponent<{ conversationId?: string }>;
let loaded: Pages | null = null;

/** Loads the messages pages' chunk once, then shows the list or one conversation with its heading focused. */
export function MessagesOutlet({ conversationId }: { conversationId?: string }) {
  const [Page, setPage] = useState<Pages | null>(() => loaded);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    if (Page) return;
    import("./pages")
      .then((module) => {
        loaded = module.MessagesPage;
        setPage(() => module.MessagesPage);
      })
      .catch(() => setFailed(true));
  }, []);

  // The app focuses the heading on navigation; the first visit's heading comes with the chunk.
  useEffect(() => {
    if (Page) document.querySelector<HTMLElement>("main h1")?.focus();
  }, [Page]);

  if (failed) {
    return (
      <div class="error" role="alert">
        <p>This page could not be loaded: check your connection and reload.</p>
      </div>
    );
  }
  if (!Page) {
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  }
  return <Page conversationId={conversationId} />;
}
