import { useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post } from "../api/client";
import { authorized, endIfUnauthenticated } from "../session";
import { isBlank, MAX_POST_CHARS, postLength } from "../text";

// Close to the limit, the remaining count is announced to screen readers.
const ANNOUNCE_WITHIN = 20;

const characters = (n: number) => (n === 1 ? "1 character" : `${n} characters`);

export function Composer({ onPosted }: { onPosted: (post: Post) => void }) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const remaining = MAX_POST_CHARS - postLength(text);
  const sendable = !busy && !isBlank(text) && remaining >= 0;

  async function submit(event: Event) {
    event.preventDefault();
    if (!sendable) return;
    setBusy(true);
    setError(null);
    try {
      const result = await api
        .POST("/v1/posts", { body: { text }, headers: await authorized() })
        .catch((cause) => Promise.reject(networkError(cause)));
      onPosted(unwrap(result));
      setText("");
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="compose" onSubmit={submit} aria-label="New post">
      <label for="compose-text">What's happening?</label>
      <textarea
        id="compose-text"
        rows={3}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void submit(e);
        }}
        aria-invalid={remaining < 0 ? true : undefined}
        aria-describedby="compose-count"
      />
      <div class="compose-bar">
        <span id="compose-count" class={remaining < 0 ? "count over" : "count"}>
          {remaining < 0 ? `${characters(-remaining)} over the limit` : `${characters(remaining)} left`}
        </span>
        <button type="submit" disabled={!sendable}>
          {busy ? "Posting…" : "Post"}
        </button>
      </div>
      <p class="sr-only" aria-live="polite">
        {remaining < 0
          ? `${characters(-remaining)} over the limit`
          : remaining <= ANNOUNCE_WITHIN
            ? `${characters(remaining)} left`
            : ""}
      </p>
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
    </form>
  );
}
