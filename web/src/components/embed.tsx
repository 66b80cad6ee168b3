import type { Post } from "../api/client";
import { RichText } from "./richtext";

/** A post's images, each described for screen readers. */
export function PostMedia({ post }: { post: Post }) {
  const images = (post.media ?? []).filter((m) => m.url && m.contentType?.startsWith("image/"));
  if (images.length === 0) return null;
  const name = post.author?.displayName || post.author?.username || "the author";
  return (
    <div class="media">
      {images.map((m, i) => (
        <img key={m.mediaId} src={m.url} alt={m.altText || `Image ${i + 1} of ${images.length} posted by ${name}`} loading="lazy" />
      ))}
    </div>
  );
}

/** The original post inside a quote, or inside the composer while quoting. */
export function QuotedPost({ post }: { post: Post }) {
  const name = post.author?.displayName || post.author?.username || "Someone";
  return (
    <blockquote class="quoted" aria-label={`Quoted post by ${name}`}>
      <p class="quoted-head">
        <span class="name">{name}</span> {post.author?.username && <span class="handle">@{post.author.username}</span>}
        {post.id && (
          <>
            {" · "}
            <a href={`/posts/${post.id}`}>View post</a>
          </>
        )}
      </p>
      <p class="text">
        <RichText text={post.text ?? ""} links={false} />
      </p>
      <PostMedia post={post} />
    </blockquote>
  );
}
