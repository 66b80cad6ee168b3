import type { Post } from "../api/client";

/** A post as a list item: author, time (a link to the post's page), text and counts. */
export function PostItem({ post }: { post: Post }) {
  return (
    <li class="post">
      <PostBody post={post} />
    </li>
  );
}

export function PostBody({ post, headingLevel }: { post: Post; headingLevel?: 2 }) {
  const author = post.author;
  const name = author?.displayName || author?.username || "Someone";
  const created = post.createdAt ? new Date(post.createdAt) : null;
  return (
    <article aria-label={`Post by ${name}`}>
      <header>
        {headingLevel ? <h2 class="name">{name}</h2> : <span class="name">{name}</span>}{" "}
        {author?.username && <span class="handle">@{author.username}</span>}
        {created && (
          <>
            {" · "}
            <a href={`/posts/${post.id}`} class="permalink">
              <time dateTime={post.createdAt}>{created.toLocaleString()}</time>
            </a>
          </>
        )}
      </header>
      <p class="text">{post.text}</p>
      <footer class="counts">
        <span>{post.replyCount ?? 0} replies</span>
        <span>{post.repostCount ?? 0} reposts</span>
        <span>{post.likeCount ?? 0} likes</span>
      </footer>
    </article>
  );
}
