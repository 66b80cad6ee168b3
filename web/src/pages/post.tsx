import { useEffect, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post } from "../api/client";
import { PostBody, PostItem } from "../components/post";
import { endIfUnauthenticated, optionallyAuthorized, session } from "../session";
import { Composer } from "./compose";

type Thread = { ancestors: Post[]; post: Post | null; replies: Post[]; nextPageToken: string };

async function fetchThread(postId: string, pageToken?: string): Promise<Thread> {
  const result = await api
    .GET("/v1/posts/{postId}/context", {
      params: { path: { postId }, query: { pageToken } },
      headers: await optionallyAuthorized(),
    })
    .catch((cause) => Promise.reject(networkError(cause)));
  const data = unwrap(result);
  return {
    ancestors: data.ancestors ?? [],
    post: data.post ?? null,
    replies: data.replies ?? [],
    nextPageToken: data.nextPageToken ?? "",
  };
}

/** A post with the thread around it: its ancestors, then its replies, oldest first. Public. */
export function PostPage({ postId }: { postId: string }) {
  const [thread, setThread] = useState<Thread | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);

  async function load(pageToken?: string) {
    setLoading(true);
    setError(null);
    try {
      const page = await fetchThread(postId, pageToken);
      setThread((known) => (pageToken && known ? { ...page, replies: [...known.replies, ...page.replies] } : page));
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => void load(), [postId]);

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Post
      </h1>
      {error && (
        <div class="error" role="alert">
          <p>{error.status === 404 ? "This post does not exist or was deleted." : error.message}</p>
          {error.status !== 404 && (
            <button type="button" onClick={() => load(thread?.nextPageToken || undefined)}>
              Try again
            </button>
          )}
        </div>
      )}
      {loading && !thread && (
        <p class="loading" role="status">
          Loading the thread…
        </p>
      )}
      {thread && thread.ancestors.length > 0 && (
        <ol class="timeline thread" aria-label="Earlier in the thread">
          {thread.ancestors.map((post) => (
            <PostItem key={post.id} post={post} />
          ))}
        </ol>
      )}
      {thread?.post && (
        <div class="focus-post">
          <PostBody post={thread.post} headingLevel={2} />
        </div>
      )}
      {thread?.post && session() && (
        <div id="reply">
          <Composer
            replyTo={thread.post}
            label="Your reply"
            onPosted={(reply) => setThread((known) => known && { ...known, replies: [...known.replies, reply] })}
          />
        </div>
      )}
      {thread && (
        <section aria-labelledby="replies-title">
          <h2 id="replies-title">Replies</h2>
          {thread.replies.length === 0 ? (
            <p class="empty">No replies yet.</p>
          ) : (
            <ol class="timeline" aria-label="Replies" aria-busy={loading}>
              {thread.replies.map((post) => (
                <PostItem key={post.id} post={post} />
              ))}
            </ol>
          )}
          {thread.nextPageToken && (
            <button type="button" class="more" disabled={loading} onClick={() => load(thread.nextPageToken)}>
              {loading ? "Loading replies…" : "Show more replies"}
            </button>
          )}
        </section>
      )}
    </section>
  );
}
