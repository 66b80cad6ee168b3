import { useState } from "preact/hooks";
import type { ApiError } from "../api/client";
import { formatMoney } from "../shop/money";
import { failure, searchProducts, type Product } from "./api";

// The most product cards one message may carry (the service's limit).
export const MAX_PRODUCTS = 10;

type Props = { chosen: Product[]; onChange: (chosen: Product[]) => void; disabled: boolean };

/** Finds products in the catalog (the products search) and attaches them to the message being written. */
export function ProductPicker({ chosen, onChange, disabled }: Props) {
  const [open, setOpen] = useState(false);
  const [query, setQuery] = useState("");
  const [found, setFound] = useState<Product[] | null>(null);
  const [searching, setSearching] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const full = chosen.length >= MAX_PRODUCTS;

  async function search(event: Event) {
    event.preventDefault();
    const q = query.trim();
    if (!q || searching) return;
    setSearching(true);
    setError(null);
    try {
      setFound(await searchProducts(q));
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setSearching(false);
    }
  }

  const chosenIds = new Set(chosen.map((product) => product.id));
  return (
    <div class="picker">
      {chosen.length > 0 && (
        <ul class="chosen-products" aria-label="Products attached">
          {chosen.map((product) => (
            <li key={product.id}>
              <span class="product-title">{product.title}</span>{" "}
              <span class="product-price">{formatMoney(product.priceMinor, product.currency)}</span>
              <button
                type="button"
                class="secondary"
                disabled={disabled}
                aria-label={`Remove ${product.title}`}
                onClick={() => onChange(chosen.filter((other) => other.id !== product.id))}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <button type="button" class="secondary" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? "Close product search" : "Attach a product"}
      </button>
      {open && (
        <div class="picker-search" role="group" aria-label="Find a product">
          <label for="product-query">Product name</label>
          <div class="search-row">
            <input
              id="product-query"
              type="search"
              value={query}
              maxLength={200}
              onInput={(e) => setQuery(e.currentTarget.value)}
              onKeyDown={(e) => e.key === "Enter" && void search(e)}
            />
            <button type="button" onClick={search} disabled={searching || !query.trim()}>
              {searching ? "Searching…" : "Find"}
            </button>
          </div>
          {error && (
            <p class="error" role="alert">
              {error.message}
            </p>
          )}
          {full && <p class="hint">A message holds at most {MAX_PRODUCTS} products.</p>}
          {found && found.length === 0 && (
            <p class="empty" role="status">
              No products match “{query.trim()}”.
            </p>
          )}
          {found && found.length > 0 && (
            <ul class="found-products" aria-label="Products found">
              {found.map((product) => (
                <li key={product.id}>
                  <span class="product-title">{product.title}</span>{" "}
                  <span class="product-price">{formatMoney(product.priceMinor, product.currency)}</span>
                  <button
                    type="button"
                    class="secondary"
                    disabled={disabled || full || chosenIds.has(product.id)}
                    aria-label={chosenIds.has(product.id) ? `${product.title} attached` : `Attach ${product.title}`}
                    onClick={() => onChange([...chosen, product])}
                  >
                    {chosenIds.has(product.id) ? "Attached" : "Attach"}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
