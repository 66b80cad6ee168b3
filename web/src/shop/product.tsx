import { useState } from "preact/hooks";
import { api, ApiError, type Schemas } from "../api/client";
import { authorized, session } from "../session";
import { call, failure, useResource } from "./load";
import { formatMoney } from "./money";

type Product = Schemas["aviary.catalog.v1.Product"];
type Seller = Schemas["aviary.identity.v1.User"];

async function fetchProduct(productId: string): Promise<{ product: Product; seller: Seller | null }> {
  const product = await call(api.GET("/v1/products/{productId}", { params: { path: { productId } } }));
  // The seller's name is a nicety: the product stands without it.
  const seller = product.sellerId
    ? await call(api.GET("/v1/users/{userId}", { params: { path: { userId: product.sellerId } } })).catch(() => null)
    : null;
  return { product, seller };
}

/** A product's page: title, price, stock, seller, and adding it to the cart. Public. */
export function ProductPage({ productId }: { productId: string }) {
  const loaded = useResource(() => fetchProduct(productId), [productId]);
  const product = loaded.data?.product;
  const seller = loaded.data?.seller;

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        {product?.title ?? "Product"}
      </h1>
      {loaded.error && (
        <div class="error" role="alert">
          <p>{loaded.error.status === 404 ? "This product does not exist." : loaded.error.message}</p>
          {loaded.error.status !== 404 && (
            <button type="button" onClick={loaded.reload}>
              Try again
            </button>
          )}
        </div>
      )}
      {loaded.loading && !product && (
        <p class="loading" role="status">
          Loading the product…
        </p>
      )}
      {product && (
        <div class="product">
          <p class="price">
            <span class="sr-only">Price: </span>
            {formatMoney(product.priceMinor, product.currency)}
          </p>
          <dl class="facts">
            <dt>Seller</dt>
            <dd>{seller ? `${seller.displayName || seller.username} (@${seller.username})` : "Unknown seller"}</dd>
            <dt>In stock</dt>
            <dd>{Number(product.stock ?? 0) > 0 ? `${product.stock} available` : "Out of stock"}</dd>
          </dl>
          {product.description && <p class="description">{product.description}</p>}
          {!product.active ? (
            <p class="notice">This product is no longer sold.</p>
          ) : (
            <AddToCart product={product} />
          )}
        </div>
      )}
    </section>
  );
}

function AddToCart({ product }: { product: Product }) {
  const [quantity, setQuantity] = useState(1);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [added, setAdded] = useState<number | null>(null);
  const inStock = Number(product.stock ?? 0);

  if (!session()) {
    return (
      <p class="notice">
        <a href="/">Log in</a> to buy this.
      </p>
    );
  }

  async function add(event: Event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    setAdded(null);
    try {
      const cart = await call(
        api.POST("/v1/cart/items", {
          body: { productId: product.id ?? "", quantity },
          headers: await authorized(),
        }),
      );
      const line = cart.items?.find((item) => item.productId === product.id);
      setAdded(line?.quantity ?? quantity);
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="add-to-cart" onSubmit={add} aria-label="Add to cart">
      <label for="quantity">Quantity</label>
      <input
        id="quantity"
        type="number"
        inputMode="numeric"
        min={1}
        max={100}
        value={quantity}
        onInput={(e) => setQuantity(Math.max(1, Math.min(100, Number(e.currentTarget.value) || 1)))}
      />
      <button type="submit" disabled={busy || inStock <= 0}>
        {busy ? "Adding…" : "Add to cart"}
      </button>
      <div aria-live="polite">
        {added !== null && (
          <p class="notice">
            In your cart: {added}. <a href="/cart">Go to cart</a>
          </p>
        )}
      </div>
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
    </form>
  );
}
