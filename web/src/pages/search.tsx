import { useEffect, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post, type Schemas } from "../api/client";
import { PostItem } from "../components/post";
import { TrendsPanel } from "../components/trends";
import { navigate } from "../router";
import { endIfUnauthenticated, optionallyAuthorized } from "../session";

type Product = Schemas["aviary.catalog.v1.Product"];
type Kind = "posts" | "products";
type Results = { posts: Post[]; products: Product[]; nextPageToken: string };

async function searchFor(kind: Kind, q: string, pageToken?: string): Promise<Results> {
  const request = { params: { query: { q, pageSize: 20, pageToken } }, headers: await optionallyAuthorized() };
  const result = await (kind === "posts"
    ? api.GET("/v1/search/posts", request)
    : api.GET("/v1/search/products", request)
  ).catch((cause) => Promise.reject(networkError(cause)));
  const data = unwrap<{ posts?: Post[]; products?: Product[]; nextPageToken?: string }>(result);
  return { posts: data.posts ?? [], products: data.products ?? [], nextPageToken: data.nextPageToken ?? "" };
}

export function price(product: Product): string {
  const minor = Number(product.priceMinor ?? 0);
  const currency = product.currency || "USD";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

/** Search posts or products; the query lives in the address (?q=…&type=products) so results can be linked. */
export function SearchPage({ search }: { search: string }) {
  const params = new URLSearchParams(search);
  const q = params.get("q") ?? "";
  const kind: Kind = params.get("type") === "products" ? "products" : "posts";
  const [draft, setDraft] = useState(q);
  const [results, setResults] = useState<Results | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function load(pageToken?: string) {
    if (!q.trim()) return;
    setLoading(true);
    setError(null);
    try {
      const page = await searchFor(kind, q, pageToken);
      setResults((known) =>
        pageToken && known
          ? { ...page, posts: [...known.posts, ...page.posts], products: [...known.products, ...page.products] }
          : page,
      );
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => {
    setDraft(q);
    setResults(null);
    void load();
  }, [q, kind]);

  const go = (query: string, type: Kind) =>
    navigate(`/search?${new URLSearchParams(type === "products" ? { q: query, type } : { q: query })}`);

  const empty = results && (kind === "posts" ? results.posts : results.products).length === 0;
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Search
      </h1>
      <form
        role="search"
        class="search-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (draft.trim()) go(draft.trim(), kind);
        }}
      >
        <label for="search-q">Search posts and products</label>
        <div class="search-row">
          <input id="search-q" type="search" value={draft} maxLength={200} onInput={(e) => setDraft(e.currentTarget.value)} />
          <button type="submit">Search</button>
        </div>
      </form>
      <div class="tabs" role="group" aria-label="What to search">
        {(["posts", "products"] as const).map((type) => (
          <button
            key={type}
            type="button"
            class={type === kind ? "tab current" : "tab"}
            aria-pressed={type === kind}
            onClick={() => go(q, type)}
          >
            {type === "posts" ? "Posts" : "Products"}
          </button>
        ))}
      </div>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load(results?.nextPageToken || undefined)}>
            Try again
          </button>
        </div>
      )}
      {!q && <p class="empty">Type words, a #hashtag or an @username.</p>}
      {loading && (
        <p class="loading" role="status">
          Searching…
        </p>
      )}
      {empty && !loading && (
        <p class="empty" role="status">
          No {kind} match “{q}”.
        </p>
      )}
      {results && kind === "posts" && results.posts.length > 0 && (
        <ol class="timeline" aria-label={`Posts matching ${q}`}>
          {results.posts.map((post) => (
            <PostItem key={post.id} post={post} />
          ))}
        </ol>
      )}
      {results && kind === "products" && results.products.length > 0 && (
        <ul class="products" aria-label={`Products matching ${q}`}>
          {results.products.map((product) => (
            <li key={product.id} class="product-card">
              <a href={`/products/${product.id}`}>{product.title || "Untitled product"}</a>
              <span class="price">{price(product)}</span>
              {product.description && <p class="hint">{product.description}</p>}
            </li>
          ))}
        </ul>
      )}
      {!loading && results?.nextPageToken && (
        <button type="button" class="more" onClick={() => load(results.nextPageToken)}>
          Show more results
        </button>
      )}
      <TrendsPanel />
    </section>
  );
}
