import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post } from "../api/client";
import { PostItem } from "../components/post";
import { authorized, endIfUnauthenticated } from "../session";
import { Composer } from "./compose";
import { subscribe } from "../live";
import { navigate, useSearch } from "../router";
import { ForYouFeed } from "./feed";

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

type Tab = "following" | "for-you";
const TABS: { tab: Tab; label: string; path: string }[] = [
  { tab: "following", label: "Following", path: "/home" },
  { tab: "for-you", label: "For you", path: "/home?tab=for-you" },
];
const PANEL_ID = "home-panel";
const tabId = (tab: Tab) => `home-tab-${tab}`;

/** Home: the composer, then the Following timeline or the For you feed (the tab is in the address). */
export function HomePage() {
  const current: Tab = new URLSearchParams(useSearch()).get("tab") === "for-you" ? "for-you" : "following";
  // Posts written here, shown on top of either tab until the lists have them.
  const [posted, setPosted] = useState<Post[]>([]);
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Home
      </h1>
      <Composer onPosted={(post) => setPosted((known) => [post, ...known.filter((p) => p.id !== post.id)])} />
      <HomeTabs current={current} />
      <div id={PANEL_ID} role="tabpanel" aria-labelledby={tabId(current)}>
        {current === "following" ? <FollowingTimeline posted={posted} /> : <ForYouFeed posted={posted} />}
      </div>
    </section>
  );
}

/** A tablist of two tabs: arrow keys, Home and End move between them and select (the address follows). */
function HomeTabs({ current }: { current: Tab }) {
  const tabs = useRef<HTMLDivElement>(null);
  function select(tab: Tab, focus: boolean) {
    navigate(TABS.find((t) => t.tab === tab)?.path ?? "/home");
    if (focus) tabs.current?.querySelector<HTMLElement>(`#${tabId(tab)}`)?.focus();
  }
  function onKeyDown(event: KeyboardEvent) {
    const at = TABS.findIndex((t) => t.tab === current);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    select(TABS[(to + TABS.length) % TABS.length].tab, true);
  }
  return (
    <div ref={tabs} class="tabs" role="tablist" aria-label="Timelines" onKeyDown={onKeyDown}>
      {TABS.map(({ tab, label }) => (
        <button
          key={tab}
          id={tabId(tab)}
          type="button"
          role="tab"
          class={tab === current ? "tab current" : "tab"}
          aria-selected={tab === current}
          aria-controls={PANEL_ID}
          tabIndex={tab === current ? 0 : -1}
          onClick={() => select(tab, false)}
        >
          {label}
        </button>
      ))}
    </div>
  );
}

function FollowingTimeline({ posted }: { posted: Post[] }) {
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

  const loaded = new Set((posts ?? []).map((p) => p.id));
  const shown = posts ? [...posted.filter((p) => !loaded.has(p.id)), ...posts] : null;

  return (
    <>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load(posts ? nextPageToken || undefined : undefined)}>
            Try again
          </button>
        </div>
      )}
      {shown && shown.length === 0 && !loading && (
        <p class="empty">Your home timeline is empty. Posts from people you follow, and your own, appear here.</p>
      )}
      {shown && shown.length > 0 && (
        <ol class="timeline" aria-label="Home timeline" aria-busy={loading}>
          {shown.map((post) => (
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
    </>
  );
}
