import { useId, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post } from "../api/client";
import { authorized, endIfUnauthenticated } from "../session";
import { isBlank, MAX_POST_CHARS, postLength } from "../text";
import { AttachmentList, MAX_ATTACHMENTS, useAttachments } from "../components/attachments";
import { QuotedPost } from "../components/embed";
import { pieces, RichText } from "../components/richtext";
import { ProductPicker, type Product } from "../components/product-picker";

// Close to the limit, the remaining count is announced to screen readers.
const ANNOUNCE_WITHIN = 20;

const characters = (n: number) => (n === 1 ? "1 character" : `${n} characters`);

type ComposerProps = {
  onPosted: (post: Post) => void;
  /** Makes the post a quote of this one (shown embedded). */
  quoting?: Post;
  /** Makes the post a reply to this one. */
  replyTo?: Post;
  label?: string;
};

export function Composer({ onPosted, quoting, replyTo, label = "What's happening?" }: ComposerProps) {
  // The home composer keeps stable ids; quote and reply composers share a page with others.
  const generated = useId();
  const id = quoting || replyTo ? generated : "compose";
  const [text, setText] = useState("");
  const attachments = useAttachments();
  const [products, setProducts] = useState<Product[]>([]);
  const [tagging, setTagging] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const remaining = MAX_POST_CHARS - postLength(text);
  const sendable = !busy && !isBlank(text) && remaining >= 0;
  const tagged = pieces(text).some((piece) => piece.kind !== "plain");

  async function submit(event: Event) {
    event.preventDefault();
    if (!sendable) return;
    setBusy(true);
    setError(null);
    try {
      const mediaIds = await attachments.uploadAll();
      const result = await api
        .POST("/v1/posts", {
          body: {
            text,
            mediaIds,
            productIds: products.map((product) => product.id ?? ""),
            repostOfId: quoting?.id,
            replyToId: replyTo?.id,
          },
          headers: await authorized(),
        })
        .catch((cause) => Promise.reject(networkError(cause)));
      onPosted(unwrap(result));
      setText("");
      attachments.clear();
      setProducts([]);
      setTagging(false);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="compose" onSubmit={submit} aria-label={quoting ? "Quote post" : replyTo ? "Reply" : "New post"}>
      <label for={`${id}-text`}>{label}</label>
      <textarea
        id={`${id}-text`}
        rows={3}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void submit(e);
        }}
        aria-invalid={remaining < 0 ? true : undefined}
        aria-describedby={`${id}-count`}
      />
      {tagged && (
        <div class="preview">
          <span class="preview-label">Preview</span>
          <p class="text">
            <RichText text={text} links={false} />
          </p>
        </div>
      )}
      {quoting && <QuotedPost post={quoting} />}
      <AttachmentList items={attachments.items} onDescribe={attachments.describe} onRemove={attachments.remove} />
      {tagging && <ProductPicker id={id} picked={products} onChange={setProducts} />}
      {attachments.refused && (
        <p class="field-error" role="alert">
          {attachments.refused}
        </p>
      )}
      <div class="compose-bar">
        {attachments.items.length < MAX_ATTACHMENTS && (
          <label class="attach">
            Add image
            <input
              type="file"
              class="sr-only"
              accept="image/png,image/jpeg,image/gif,image/webp"
              multiple
              onChange={(e) => {
                attachments.add(e.currentTarget.files);
                e.currentTarget.value = "";
              }}
            />
          </label>
        )}
        {!tagging && (
          <button type="button" class="action" onClick={() => setTagging(true)}>
            Tag products
          </button>
        )}
        <span id={`${id}-count`} class={remaining < 0 ? "count over" : "count"}>
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
