import { useState } from "preact/hooks";
import type { Post } from "../api/client";
import { PostActions } from "./actions";
import { PostMedia, QuotedPost } from "./embed";
import { ProductCards } from "./product-card";
import { RichText } from "./richtext";
import { fullTime, shortTime, useMinuteClock } from "../time";

/** A post as a list item: author, time (a link to the post's page), text and counts. */
export function PostItem({ post }: { post: Post }) {
  return (
    <li class="post">
      <PostBody post={post} />
    </li>
  );
}

export function PostBody({ post: shown, headingLevel }: { post: Post; headingLevel?: 2 }) {
  const [deleted, setDeleted] = useState(false);
  // A pure repost (no text of its own) shows the original, under "x reposted".
  const pureRepost = Boolean(shown.repostOfId && !shown.text && shown.repostOf);
  const post = pureRepost && shown.repostOf ? shown.repostOf : shown;
  const reposter = shown.author?.displayName || shown.author?.username || "Someone";
  const quoted = !pureRepost && shown.repostOf ? shown.repostOf : null;
  const author = post.author;
  const name = author?.displayName || author?.username || "Someone";
  const created = post.createdAt ? new Date(post.createdAt) : null;
  const now = useMinuteClock();
  return (
    <article aria-label={`Post by ${name}`}>
      {pureRepost && <p class="reposted">{reposter} reposted</p>}
      <header>
        {headingLevel ? <h2 class="name">{name}</h2> : <span class="name">{name}</span>}{" "}
        {author?.username && (
          <a class="handle" href={`/users/${author.username}`}>
            @{author.username}
          </a>
        )}
        {created && (
          <>
            {" · "}
            <a href={`/posts/${post.id}`} class="permalink">
              <time dateTime={post.createdAt} title={fullTime(created)}>
                <span aria-hidden="true">{shortTime(created, now)}</span>
                <span class="sr-only">{fullTime(created)}</span>
              </time>
            </a>
          </>
        )}
      </header>
      {deleted ? (
        <p class="text empty">This post was deleted.</p>
      ) : (
        <>
          <p class="text">
            <RichText text={post.text ?? ""} />
          </p>
          <PostMedia post={post} />
          {post.products && post.products.length > 0 && <ProductCards products={post.products} />}
          {quoted && <QuotedPost post={quoted} />}
          <PostActions post={post} via={pureRepost ? shown : undefined} onDeleted={() => setDeleted(true)} />
        </>
      )}
    </article>
  );
}
