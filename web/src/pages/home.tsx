import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post } from "../api/client";
import { PostItem } from "../components/post";
import { authorized, endIfUnauthenticated } from "../session";
import { Composer } from "./compose";
import { subscribe } from "../live";

const PAGE_SIZE = 20;

type Page = { posts: Post[]; nextPageToken: string };

async function fetchHomePage(pageToken?: string): Promise<Page> {
  const result = await api
    .GET("/v1/timelines/home", {
      params: { query: { pageSize: PAGE_SIZE, pageToken } },
      headers: await authorized(),
    })
    .catch((cause) => Promise.reject(networkError(cause)));
  const data = unwrap(result);
  return { posts: data.posts ?? [], nextPageToken: data.nextPageToken ?? "" };
}

export function HomePage() {
  const [posts, setPosts] = useState<Post[] | null>(null);
  const [nextPageToken, setNextPageToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const busy = useRef(false);
  const sentinel = useRef<HTMLDivElement>(null);

  async function load(pageToken?: string) {
    if (busy.current) return;
    busy.current = true;
    setLoading(true);
    setError(null);
    try {
      const page = await fetchHomePage(pageToken);
      setPosts((known) => (pageToken && known ? [...known, ...page.posts] : page.posts));
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

  // New posts arrive live on top. After a reconnect the first page is read
  // again and merged, so posts sent while the stream was down are not lost.
  useEffect(() => {
    const addOnTop = (fresh: Post[]) =>
      setPosts((known) => {
        const seen = new Set((known ?? []).map((p) => p.id));
        return [...fresh.filter((p) => !seen.has(p.id)), ...(known ?? [])];
      });
    return subscribe("home", {
      onEvent: (event) => event.post && addOnTop([event.post]),
      onOpen: () => void fetchHomePage().then((page) => addOnTop(page.posts), () => undefined),
    });
  }, []);

  // Infinite scroll: the next page loads as the end of the list comes into
  // view. The "Show older posts" button stays for keyboards and screen readers.
  useEffect(() => {
    const end = sentinel.current;
    if (!end || !nextPageToken || error) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) void load(nextPageToken);
    }, { rootMargin: "400px 0px" });
    observer.observe(end);
    return () => observer.disconnect();
  }, [nextPageToken, error]);

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Home
      </h1>
      <Composer onPosted={(post) => setPosts((known) => [post, ...(known ?? []).filter((p) => p.id !== post.id)])} />
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load(posts ? nextPageToken || undefined : undefined)}>
            Try again
          </button>
        </div>
      )}
      {posts && posts.length === 0 && !loading && (
        <p class="empty">Your home timeline is empty. Posts from people you follow, and your own, appear here.</p>
      )}
      {posts && posts.length > 0 && (
        <ol class="timeline" aria-label="Home timeline" aria-busy={loading}>
          {posts.map((post) => (
            <PostItem key={post.id} post={post} />
          ))}
        </ol>
      )}
      {loading && (
        <p class="loading" role="status">
          Loading posts…
        </p>
      )}
      {!loading && nextPageToken && (
        <button type="button" class="more" onClick={() => load(nextPageToken)}>
          Show older posts
        </button>
      )}
      <div ref={sentinel} aria-hidden="true" />
    </section>
  );
}
