import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post, type Schemas } from "../api/client";
import { PostItem } from "../components/post";
import { ProductLink } from "../components/product-card";
import { authorized, endIfUnauthenticated } from "../session";

type FeedItem = Schemas["aviary.feed.v1.FeedItem"];
type Product = Schemas["aviary.catalog.v1.Product"];
type Page = { items: FeedItem[]; nextPageToken: string };

const PAGE_SIZE = 20;

const REASONS: Record<string, string> = {
  RECOMMENDATION_REASON_ENGAGED: "Like posts you engaged with",
  RECOMMENDATION_REASON_FOLLOWED_SELLER: "From a seller you follow",
  RECOMMENDATION_REASON_POPULAR: "Popular now",
};

async function fetchFeedPage(pageToken?: string): Promise<Page> {
  const result = await api
    .GET("/v1/feed", { params: { query: { pageSize: PAGE_SIZE, pageToken } }, headers: await authorized() })
    .catch((cause) => Promise.reject(networkError(cause)));
  const data = unwrap(result);
  return { items: data.items ?? [], nextPageToken: data.nextPageToken ?? "" };
}

const itemKey = (item: FeedItem) => (item.post ? `post:${item.post.id}` : `product:${item.product?.id}`);

function RecommendedProduct({ product, reason }: { product: Product; reason?: string }) {
  return (
    <li class="post feed-product">
      <article aria-label={`Recommended product: ${product.title}`}>
        <p class="reposted">Recommended{reason && REASONS[reason] ? ` · ${REASONS[reason]}` : ""}</p>
        <div class="product-tag">
          <ProductLink product={product} />
        </div>
      </article>
    </li>
  );
}

/** The mixed feed: ranked posts with a recommended product every few items, paged as it scrolls. */
export function ForYouFeed({ posted }: { posted: Post[] }) {
  const [items, setItems] = useState<FeedItem[] | null>(null);
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
      const page = await fetchFeedPage(pageToken);
      setItems((known) => (pageToken && known ? [...known, ...page.items] : page.items));
      setNextPageToken(page.nextPageToken);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      busy.current = false;
      setLoading(false);
    }
  }

  function reload() {
    setItems(null);
    setNextPageToken("");
    void load();
  }

  useEffect(() => void load(), []);

  // Infinite scroll, as on the home timeline; "Show more" does the same from the keyboard.
  useEffect(() => {
    const end = sentinel.current;
    if (!end || !nextPageToken || error) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) void load(nextPageToken);
    }, { rootMargin: "400px 0px" });
    observer.observe(end);
    return () => observer.disconnect();
  }, [nextPageToken, error]);

  // The ranking is built before a post written here existed: show it on top.
  const ranked = new Set((items ?? []).filter((item) => item.post).map((item) => item.post?.id));
  const fresh = posted.filter((post) => !ranked.has(post.id));
  // A page token outlives its cached ranking only so long (412): start again from the top.
  const expired = error?.status === 412;
  const shown = (items?.length ?? 0) + fresh.length;

  return (
    <>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => (expired ? reload() : load(items ? nextPageToken || undefined : undefined))}>
            {expired ? "Reload the feed" : "Try again"}
          </button>
        </div>
      )}
      {items && shown === 0 && !loading && (
        <p class="empty">
          Nothing for you yet. Follow people: their posts, and products picked for you, appear here.
        </p>
      )}
      {shown > 0 && (
        <ol class="timeline" aria-label="For you" aria-busy={loading}>
          {fresh.map((post) => (
            <PostItem key={`post:${post.id}`} post={post} />
          ))}
          {(items ?? []).map((item) =>
            item.post ? (
              <PostItem key={itemKey(item)} post={item.post} />
            ) : item.product ? (
              <RecommendedProduct key={itemKey(item)} product={item.product} reason={item.reason} />
            ) : null,
          )}
        </ol>
      )}
      {loading && (
        <p class="loading" role="status">
          Loading your feed…
        </p>
      )}
      {!loading && nextPageToken && !error && (
        <button type="button" class="more" onClick={() => load(nextPageToken)}>
          Show more
        </button>
      )}
      <div ref={sentinel} aria-hidden="true" />
    </>
  );
}
