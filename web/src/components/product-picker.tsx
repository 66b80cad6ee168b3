import "./product-picker.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Schemas } from "../api/client";
import { endIfUnauthenticated, optionallyAuthorized } from "../session";
import { formatMoney } from "../shop/money";

export type Product = Schemas["aviary.catalog.v1.Product"];

/** The posts service refuses more (CreatePostRequest.product_ids: at most 10). */
export const MAX_TAGGED_PRODUCTS = 10;

const RESULTS_SHOWN = 8;
// Typing pauses this long before the catalog is asked, so each key is not a request.
const SEARCH_DELAY_MS = 250;

type Search = { q: string; products: Product[]; error: ApiError | null; loading: boolean };

async function searchProducts(q: string): Promise<Product[]> {
  const result = await api
    .GET("/v1/search/products", {
      params: { query: { q, pageSize: RESULTS_SHOWN + MAX_TAGGED_PRODUCTS } },
      headers: await optionallyAuthorized(),
    })
    .catch((cause) => Promise.reject(networkError(cause)));
  return unwrap(result).products ?? [];
}

/** Searches the catalog as the query changes; only the newest query's answer is kept. */
function useProductSearch(query: string): Search {
  const q = query.trim();
  const [search, setSearch] = useState<Search>({ q: "", products: [], error: null, loading: false });
  useEffect(() => {
    if (!q) {
      setSearch({ q: "", products: [], error: null, loading: false });
      return;
    }
    let current = true;
    setSearch((known) => ({ ...known, loading: true }));
    const timer = setTimeout(async () => {
      try {
        const products = await searchProducts(q);
        if (current) setSearch({ q, products, error: null, loading: false });
      } catch (cause) {
        endIfUnauthenticated(cause);
        if (current) setSearch({ q, products: [], error: networkError(cause), loading: false });
      }
    }, SEARCH_DELAY_MS);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [q]);
  return search;
}

function resultsStatus(search: Search, shown: number): string {
  if (search.loading) return "Searching products…";
  if (search.error || !search.q) return "";
  if (shown === 0) return `No products match “${search.q}”.`;
  return shown === 1 ? "1 product found; use the arrow keys to choose." : `${shown} products found; use the arrow keys to choose.`;
}

type PickerProps = {
  /** Unique per page: the home composer and a reply composer can share one. */
  id: string;
  picked: Product[];
  onChange: (picked: Product[]) => void;
};

/** Product tags for a post: a combobox searching the catalog, the picked products as removable chips. */
export function ProductPicker({ id, picked, onChange }: PickerProps) {
  const [query, setQuery] = useState("");
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(-1);
  const input = useRef<HTMLInputElement>(null);
  const search = useProductSearch(query);
  const pickedIds = new Set(picked.map((product) => product.id));
  const results = search.products.filter((product) => !pickedIds.has(product.id)).slice(0, RESULTS_SHOWN);
  const full = picked.length >= MAX_TAGGED_PRODUCTS;
  const expanded = open && query.trim() !== "" && !full;
  const listbox = `${id}-products`;
  const optionId = (i: number) => `${listbox}-${i}`;

  useEffect(() => setActive(-1), [search.q]);
  // Opened from the composer's "Tag products" button: typing can start at once.
  useEffect(() => input.current?.focus(), []);

  function pick(product: Product) {
    onChange([...picked, product]);
    setQuery("");
    setActive(-1);
    input.current?.focus();
  }

  function unpick(product: Product) {
    onChange(picked.filter((p) => p.id !== product.id));
    input.current?.focus();
  }

  function onKeyDown(event: KeyboardEvent) {
    const last = results.length - 1;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      setOpen(true);
      if (last < 0) return;
      const step = event.key === "ArrowDown" ? 1 : -1;
      setActive((i) => (i < 0 ? (step > 0 ? 0 : last) : (i + step + last + 1) % (last + 1)));
    } else if (event.key === "Enter") {
      // Enter picks; it never submits the post from here.
      event.preventDefault();
      const choice = results[active] ?? (results.length === 1 ? results[0] : undefined);
      if (expanded && choice) pick(choice);
    } else if (event.key === "Escape" && expanded) {
      event.preventDefault();
      setOpen(false);
      setActive(-1);
    }
  }

  return (
    <div class="product-picker">
      <label for={`${id}-product-search`}>Search products to tag</label>
      <p id={`${id}-product-hint`} class="hint">
        {full
          ? `You tagged ${MAX_TAGGED_PRODUCTS} products, the most a post can have.`
          : `Search the catalog by title; up to ${MAX_TAGGED_PRODUCTS} products.`}
      </p>
      <input
        ref={input}
        id={`${id}-product-search`}
        type="text"
        role="combobox"
        autocomplete="off"
        maxLength={200}
        value={query}
        // Read-only rather than disabled at the limit, so focus stays here after the last pick.
        readOnly={full}
        aria-disabled={full || undefined}
        aria-autocomplete="list"
        aria-expanded={expanded}
        aria-controls={listbox}
        aria-activedescendant={expanded && active >= 0 && active < results.length ? optionId(active) : undefined}
        aria-describedby={`${id}-product-hint`}
        onInput={(e) => {
          setQuery(e.currentTarget.value);
          setOpen(true);
        }}
        onKeyDown={onKeyDown}
        onBlur={() => setOpen(false)}
      />
      <ul id={listbox} role="listbox" aria-label="Matching products" class="picker-results" hidden={!expanded || results.length === 0}>
        {results.map((product, i) => (
          <li
            key={product.id}
            id={optionId(i)}
            role="option"
            aria-selected={i === active}
            class={i === active ? "picker-option active" : "picker-option"}
            // mousedown, not click: the input keeps focus (its blur would close the list first).
            onMouseDown={(e) => {
              e.preventDefault();
              pick(product);
            }}
          >
            <span class="product-title">{product.title}</span>{" "}
            <span class="product-price">{formatMoney(product.priceMinor, product.currency)}</span>
          </li>
        ))}
      </ul>
      <p class="sr-only" role="status">
        {expanded ? resultsStatus(search, results.length) : ""}
      </p>
      {expanded && !search.loading && search.error && (
        <p class="field-error" role="alert">
          {search.error.message}
        </p>
      )}
      {expanded && !search.loading && !search.error && search.q && results.length === 0 && (
        <p class="hint">No products match “{search.q}”.</p>
      )}
      {picked.length > 0 && (
        <ul class="chips" aria-label="Products to tag">
          {picked.map((product) => (
            <li key={product.id} class="chip">
              <span class="product-title">{product.title}</span>
              <button type="button" class="chip-remove" aria-label={`Remove ${product.title}`} onClick={() => unpick(product)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
