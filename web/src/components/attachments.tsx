import { useEffect, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap } from "../api/client";
import { authorized } from "../session";

export const MAX_ATTACHMENTS = 4;
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"] as const;
type ImageType = (typeof IMAGE_TYPES)[number];

/** An image picked for a post: previewed at once, uploaded with its description when the post is sent. */
export type Attachment = { key: string; file: File; previewUrl: string; alt: string; mediaId: string | null };

/** Uploads one image as the raw body with its own Content-Type and its alt text; the media id comes back. */
async function upload(item: Attachment): Promise<string> {
  const result = await api
    .POST("/v1/media", {
      params: { query: { altText: item.alt.trim() || undefined } },
      body: item.file as unknown as string,
      bodySerializer: (body: unknown) => body as BodyInit,
      headers: { ...(await authorized()), "Content-Type": item.file.type as ImageType },
    })
    .catch((cause) => Promise.reject(networkError(cause)));
  const media = unwrap(result);
  if (!media.mediaId) throw new ApiError("The upload returned no media id; try again.", 0);
  return media.mediaId;
}

export function useAttachments() {
  const [items, setItems] = useState<Attachment[]>([]);
  const [refused, setRefused] = useState<string | null>(null);

  // Previews are object URLs: free them when the composer goes.
  useEffect(() => () => items.forEach((item) => URL.revokeObjectURL(item.previewUrl)), []);

  function add(files: FileList | null) {
    setRefused(null);
    const picked = Array.from(files ?? []);
    const images = picked.filter((file) => IMAGE_TYPES.includes(file.type as ImageType));
    if (images.length < picked.length) setRefused("Only PNG, JPEG, GIF or WebP images can be attached.");
    const fresh = images.slice(0, MAX_ATTACHMENTS - items.length).map((file) => ({
      key: `${Date.now()}-${Math.random()}`,
      file,
      previewUrl: URL.createObjectURL(file),
      alt: "",
      mediaId: null,
    }));
    setItems((known) => [...known, ...fresh]);
  }

  function describe(key: string, alt: string) {
    setItems((known) => known.map((k) => (k.key === key ? { ...k, alt, mediaId: null } : k)));
  }

  function remove(key: string) {
    setItems((known) => {
      known.filter((k) => k.key === key).forEach((k) => URL.revokeObjectURL(k.previewUrl));
      return known.filter((k) => k.key !== key);
    });
  }

  function clear() {
    items.forEach((item) => URL.revokeObjectURL(item.previewUrl));
    setItems([]);
  }

  /** Uploads what is not uploaded yet (a retry after a failed post sends only the rest). */
  async function uploadAll(): Promise<string[]> {
    const ids: string[] = [];
    for (const item of items) {
      const mediaId = item.mediaId ?? (await upload(item));
      setItems((known) => known.map((k) => (k.key === item.key ? { ...k, mediaId } : k)));
      ids.push(mediaId);
    }
    return ids;
  }

  return { items, refused, add, describe, remove, clear, uploadAll };
}

type ListProps = { items: Attachment[]; onDescribe: (key: string, alt: string) => void; onRemove: (key: string) => void };

export function AttachmentList({ items, onDescribe, onRemove }: ListProps) {
  if (items.length === 0) return null;
  return (
    <ul class="attachments" aria-label="Attached images">
      {items.map((item) => (
        <li key={item.key}>
          <img src={item.previewUrl} alt={`Preview of ${item.file.name}`} />
          <label for={`alt-${item.key}`} class="alt-label">
            Describe {item.file.name}
          </label>
          <input
            id={`alt-${item.key}`}
            maxLength={1000}
            value={item.alt}
            placeholder="For people who cannot see it"
            onInput={(e) => onDescribe(item.key, e.currentTarget.value)}
          />
          <button type="button" class="secondary" onClick={() => onRemove(item.key)}>
            Remove <span class="sr-only">{item.file.name}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}
