import { useContext, useState } from "preact/hooks";
import { BookmarkedList } from "./bookmarked";
import { api, ApiError, networkError, unwrap, type Post } from "../api/client";
import { authorized, endIfUnauthenticated, session } from "../session";
import { Composer } from "../pages/compose";

async function call<T>(request: (headers: { Authorization: string }) => Promise<{ data?: T; error?: unknown; response: Response }>) {
  const result = await request(await authorized()).catch((cause) => Promise.reject(networkError(cause)));
  return unwrap(result);
}

const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** What a signed-in reader can do with a post: reply, repost, quote, like, bookmark, delete their own. */
type Props = {
  post: Post;
  /** The pure repost this post is shown through, if any (the reader's own shows as reposted). */
  via?: Post;
  onDeleted: () => void;
};

export function PostActions({ post, via, onDeleted }: Props) {
  const me = session()?.user;
  const [liked, setLiked] = useState(post.likedByMe ?? false);
  const [likes, setLikes] = useState(post.likeCount ?? 0);
  const [reposts, setReposts] = useState(post.repostCount ?? 0);
  const [reposted, setReposted] = useState(Boolean(post.repostedByMe || (via && via.authorId === me?.id)));
  // On the Bookmarks page every post shown is bookmarked, and leaves the list when it no longer is.
  const onUnbookmarked = useContext(BookmarkedList);
  const [bookmarked, setBookmarked] = useState(onUnbookmarked !== null);
  const [quoting, setQuoting] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const postId = post.id ?? "";
  const path = { params: { path: { postId } } };

  async function act(task: () => Promise<void>) {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await task();
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setBusy(false);
    }
  }

  const toggleLike = () =>
    act(async () => {
      if (liked) await call((headers) => api.POST("/v1/posts/{postId}:unlike", { ...path, body: {}, headers }));
      else await call((headers) => api.POST("/v1/posts/{postId}:like", { ...path, body: {}, headers }));
      setLikes((n) => Math.max(0, n + (liked ? -1 : 1)));
      setLiked(!liked);
    });

  const toggleRepost = () =>
    act(async () => {
      if (reposted) {
        await call((headers) => api.POST("/v1/posts/{postId}:unrepost", { ...path, body: {}, headers }));
        setReposted(false);
        setReposts((n) => Math.max(0, n - 1));
      } else {
        await call((headers) => api.POST("/v1/posts/{postId}:repost", { ...path, body: {}, headers }));
        setReposted(true);
        setReposts((n) => n + 1);
      }
    });

  const toggleBookmark = () =>
    act(async () => {
      if (bookmarked) await call((headers) => api.DELETE("/v1/users/me/bookmarks/{postId}", { ...path, headers }));
      else await call((headers) => api.PUT("/v1/users/me/bookmarks/{postId}", { ...path, headers }));
      setBookmarked(!bookmarked);
      if (bookmarked) onUnbookmarked?.(postId);
    });

  const remove = () =>
    act(async () => {
      await call((headers) => api.DELETE("/v1/posts/{postId}", { ...path, headers }));
      onDeleted();
    });

  if (!me) {
    return (
      <footer class="counts">
        <span>{count(post.replyCount ?? 0, "reply", "replies")}</span>
        <span>{count(reposts, "repost", "reposts")}</span>
        <span>{count(likes, "like", "likes")}</span>
      </footer>
    );
  }
  const own = post.authorId === me.id;
  return (
    <footer>
      <div class="actions" role="group" aria-label="Post actions">
        <a class="action" href={`/posts/${postId}#reply`}>
          Reply <span class="n">{post.replyCount ?? 0}</span>
        </a>
        <button type="button" class="action" aria-pressed={reposted} disabled={busy} onClick={toggleRepost}>
          {reposted ? "Undo repost" : "Repost"} <span class="n">{reposts}</span>
        </button>
        <button type="button" class="action" aria-expanded={quoting} onClick={() => setQuoting(!quoting)}>
          Quote
        </button>
        <button type="button" class="action" aria-pressed={liked} disabled={busy} onClick={toggleLike}>
          {liked ? "Unlike" : "Like"} <span class="n">{likes}</span>
        </button>
        <button type="button" class="action" aria-pressed={bookmarked} disabled={busy} onClick={toggleBookmark}>
          {bookmarked ? "Remove bookmark" : "Bookmark"}
        </button>
        {own && !confirming && (
          <button type="button" class="action danger" onClick={() => setConfirming(true)}>
            Delete
          </button>
        )}
      </div>
      {confirming && (
        <div class="confirm" role="group" aria-label="Confirm deletion">
          <span>Delete this post for good?</span>
          <button type="button" class="danger" disabled={busy} onClick={remove}>
            Yes, delete
          </button>
          <button type="button" class="secondary" onClick={() => setConfirming(false)}>
            Keep it
          </button>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      {quoting && (
        <Composer
          quoting={post}
          label="Your quote"
          onPosted={() => {
            setQuoting(false);
          }}
        />
      )}
    </footer>
  );
}
