import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post } from "../api/client";
import { BookmarkedList } from "../components/bookmarked";
import { PostItem } from "../components/post";
import { authorized, endIfUnauthenticated } from "../session";

const PAGE_SIZE = 20;

type Page = { posts: Post[]; nextPageToken: string };

async function fetchBookmarks(pageToken?: string): Promise<Page> {
  const result = await api
    .GET("/v1/users/me/bookmarks", {
      params: { query: { pageSize: PAGE_SIZE, pageToken } },
      headers: await authorized(),
    })
    .catch((cause) => Promise.reject(networkError(cause)));
  const data = unwrap(result);
  return { posts: data.posts ?? [], nextPageToken: data.nextPageToken ?? "" };
}

/** The post a card acts on: the original, for a pure repost (as the card shows it). */
const shownId = (post: Post) => (post.repostOfId && !post.text && post.repostOf ? post.repostOf.id : post.id);

/** The reader's bookmarks, most recently bookmarked first, paged as the list scrolls. */
export function BookmarksPage() {
  const [posts, setPosts] = useState<Post[] | null>(null);
  const [nextPageToken, setNextPageToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const [removed, setRemoved] = useState(0);
  const busy = useRef(false);
  const sentinel = useRef<HTMLDivElement>(null);

  async function load(pageToken?: string) {
    if (busy.current) return;
    busy.current = true;
    setLoading(true);
    setError(null);
    try {
      const page = await fetchBookmarks(pageToken);
      setPosts((known) => {
        if (!pageToken || !known) return page.posts;
        const seen = new Set(known.map((p) => p.id));
        return [...known, ...page.posts.filter((p) => !seen.has(p.id))];
      });
      setNextPageToken(page.nextPageToken);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      busy.current = false;
      setLoading(false);
    }
  }

  useEffect(() => void load(), []);

  // Infinite scroll, as on home; the "Show more bookmarks" button does the same from the keyboard.
  useEffect(() => {
    const end = sentinel.current;
    if (!end || !nextPageToken || error) return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) void load(nextPageToken);
      },
      { rootMargin: "400px 0px" },
    );
    observer.observe(end);
    return () => observer.disconnect();
  }, [nextPageToken, error]);

  function unbookmarked(postId: string) {
    setPosts((known) => (known ?? []).filter((p) => shownId(p) !== postId));
    setRemoved((n) => n + 1);
  }

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Bookmarks
      </h1>
      <p class="sr-only" role="status">
        {removed > 0 ? `Removed from your bookmarks (${removed}).` : ""}
      </p>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load(posts ? nextPageToken || undefined : undefined)}>
            Try again
          </button>
        </div>
      )}
      {posts && posts.length === 0 && !loading && !nextPageToken && (
        <p class="empty">No bookmarks yet. Bookmark a post to keep it here; only you see your bookmarks.</p>
      )}
      {posts && posts.length > 0 && (
        <BookmarkedList.Provider value={unbookmarked}>
          <ol class="timeline" aria-label="Bookmarked posts" aria-busy={loading}>
            {posts.map((post) => (
              <PostItem key={post.id} post={post} />
            ))}
          </ol>
        </BookmarkedList.Provider>
      )}
      {loading && (
        <p class="loading" role="status">
          Loading bookmarks…
        </p>
      )}
      {!loading && nextPageToken && (
        <button type="button" class="more" onClick={() => load(nextPageToken)}>
          Show more bookmarks
        </button>
      )}
      <div ref={sentinel} aria-hidden="true" />
    </section>
  );
}
