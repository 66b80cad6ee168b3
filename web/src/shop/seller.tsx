import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type Schemas } from "../api/client";
import { authorized, session } from "../session";
import { call, failure, newIdempotencyKey } from "./load";
import { formatMoney, moneyInput, parseMoney } from "./money";

type Product = Schemas["aviary.catalog.v1.Product"];

// The seller's own listing includes their inactive products, so they can be reactivated.
async function fetchOwnProducts(pageToken?: string) {
  const data = await call(
    api.GET("/v1/products", {
      params: { query: { sellerId: "me", includeInactive: true, pageSize: 50, pageToken } },
      headers: await authorized(),
    }),
  );
  return { products: data.products ?? [], nextPageToken: data.nextPageToken ?? "" };
}

/** A seller's products: create one, change its price, restock, deactivate or reactivate. */
export function SellerProductsPage() {
  const me = session()?.user;
  const [products, setProducts] = useState<Product[] | null>(null);
  const [nextPageToken, setNextPageToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);

  async function load(pageToken?: string) {
    if (me?.role !== "SELLER") return setLoading(false);
    setLoading(true);
    setError(null);
    try {
      const page = await fetchOwnProducts(pageToken);
      setProducts((known) => {
        const kept = pageToken ? (known ?? []) : [];
        const ids = new Set(kept.map((p) => p.id));
        return [...kept, ...page.products.filter((p) => !ids.has(p.id))];
      });
      setNextPageToken(page.nextPageToken);
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => void load(), []);

  const replace = (product: Product) =>
    setProducts((known) => (known ?? []).map((p) => (p.id === product.id ? product : p)));

  if (me?.role !== "SELLER") {
    return (
      <section aria-labelledby="page-title">
        <h1 id="page-title" tabIndex={-1}>
          Your products
        </h1>
        <p class="notice">Only seller accounts can list products.</p>
      </section>
    );
  }

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Your products
      </h1>
      <p>
        <a href="/seller/orders">Orders to fulfil</a>
      </p>
      <NewProduct onCreated={(product) => setProducts((known) => [product, ...(known ?? [])])} />
      <h2>Listed</h2>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load()}>
            Try again
          </button>
        </div>
      )}
      {loading && !products && (
        <p class="loading" role="status">
          Loading your products…
        </p>
      )}
      {products && products.length === 0 && <p class="empty">You have no products yet.</p>}
      {products && products.length > 0 && (
        <ul class="seller-products" aria-label="Your products">
          {products.map((product) => (
            <SellerProduct key={product.id} product={product} onChange={replace} />
          ))}
        </ul>
      )}
      {nextPageToken && (
        <button type="button" class="more" disabled={loading} onClick={() => load(nextPageToken)}>
          Show more products
        </button>
      )}
    </section>
  );
}

function NewProduct({ onCreated }: { onCreated: (product: Product) => void }) {
  const [title, setTitle] = useState("");
  const [description, setDescription] = useState("");
  const [price, setPrice] = useState("");
  const [currency, setCurrency] = useState("USD");
  const [stock, setStock] = useState("1");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<Product | null>(null);

  async function submit(event: Event) {
    event.preventDefault();
    if (busy) return;
    const priceMinor = parseMoney(price, currency);
    if (!priceMinor) {
      setError(new ApiError("Enter the price as an amount, e.g. 12.50.", 400, { price_minor: "not an amount" }));
      return;
    }
    setBusy(true);
    setError(null);
    setCreated(null);
    try {
      const product = await call(
        api.POST("/v1/products", {
          body: { title: title.trim(), description: description.trim() || undefined, priceMinor, currency, stock },
          headers: await authorized(),
        }),
      );
      onCreated(product);
      setCreated(product);
      setTitle("");
      setDescription("");
      setPrice("");
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setBusy(false);
    }
  }

  const invalid = (field: string) => (error?.fields[field] ? true : undefined);
  return (
    <form class="new-product" onSubmit={submit} aria-labelledby="new-product-title" noValidate>
      <h2 id="new-product-title">New product</h2>
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      <label for="product-title">Title</label>
      <input
        id="product-title"
        required
        maxLength={120}
        value={title}
        aria-invalid={invalid("title")}
        onInput={(e) => setTitle(e.currentTarget.value)}
      />
      <label for="product-description">Description (optional)</label>
      <textarea
        id="product-description"
        rows={3}
        value={description}
        aria-invalid={invalid("description")}
        onInput={(e) => setDescription(e.currentTarget.value)}
      />
      <div class="row">
        <div>
          <label for="product-price">Price</label>
          <input
            id="product-price"
            inputMode="decimal"
            required
            value={price}
            aria-invalid={invalid("price_minor")}
            onInput={(e) => setPrice(e.currentTarget.value)}
          />
        </div>
        <div>
          <label for="product-currency">Currency</label>
          <input
            id="product-currency"
            required
            maxLength={3}
            value={currency}
            aria-invalid={invalid("currency")}
            onInput={(e) => setCurrency(e.currentTarget.value.toUpperCase())}
          />
        </div>
        <div>
          <label for="product-stock">Stock</label>
          <input
            id="product-stock"
            type="number"
            inputMode="numeric"
            min={0}
            value={stock}
            aria-invalid={invalid("stock")}
            onInput={(e) => setStock(e.currentTarget.value)}
          />
        </div>
      </div>
      <button type="submit" disabled={busy}>
        {busy ? "Creating…" : "Create product"}
      </button>
      <div aria-live="polite">
        {created && (
          <p class="notice">
            Created <a href={`/products/${created.id}`}>{created.title}</a>.
          </p>
        )}
      </div>
    </form>
  );
}

function SellerProduct({ product, onChange }: { product: Product; onChange: (product: Product) => void }) {
  const currency = product.currency ?? "USD";
  const [price, setPrice] = useState(moneyInput(product.priceMinor, currency));
  const [units, setUnits] = useState("10");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  // One restock attempt's key, kept until it gets an answer so a retry adds the units once.
  const restockKey = useRef<string | null>(null);
  const id = product.id ?? "";
  const name = product.title ?? "this product";

  async function run(request: () => Promise<Product>) {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      onChange(await request());
    } catch (cause) {
      setError(failure(cause));
      throw cause;
    } finally {
      setBusy(false);
    }
  }

  const update = (body: { priceMinor?: string; active?: boolean }) =>
    run(async () =>
      call(api.PATCH("/v1/products/{productId}", { params: { path: { productId: id } }, body, headers: await authorized() })),
    ).catch(() => undefined);

  function savePrice(event: Event) {
    event.preventDefault();
    const priceMinor = parseMoney(price, currency);
    if (!priceMinor) {
      setError(new ApiError("Enter the price as an amount, e.g. 12.50.", 400));
      return;
    }
    void update({ priceMinor });
  }

  function restock(event: Event) {
    event.preventDefault();
    restockKey.current ??= newIdempotencyKey();
    const idempotencyKey = restockKey.current;
    void run(async () =>
      call(
        api.POST("/v1/products/{productId}:restock", {
          params: { path: { productId: id } },
          body: { quantity: units, idempotencyKey },
          headers: await authorized(),
        }),
      ),
    ).then(
      () => void (restockKey.current = null),
      (cause) => {
        // A refusal is final; only a lost answer keeps the key for the retry.
        if (cause instanceof ApiError && cause.status >= 400 && cause.status < 500 && cause.status !== 429) {
          restockKey.current = null;
        }
      },
    );
  }

  return (
    <li class="seller-product" aria-busy={busy}>
      <div class="line-main">
        <a href={`/products/${id}`} class="product-title">
          {product.title}
        </a>
        <span>
          {formatMoney(product.priceMinor, currency)} · {product.stock ?? 0} in stock
          {!product.active && " · inactive"}
        </span>
      </div>
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      <div class="seller-actions">
        <form onSubmit={savePrice} aria-label={`Price of ${name}`}>
          <label for={`price-${id}`}>New price ({currency})</label>
          <input id={`price-${id}`} inputMode="decimal" value={price} onInput={(e) => setPrice(e.currentTarget.value)} />
          <button type="submit" class="secondary" disabled={busy}>
            Save price
          </button>
        </form>
        <form onSubmit={restock} aria-label={`Restock ${name}`}>
          <label for={`units-${id}`}>Units to add</label>
          <input
            id={`units-${id}`}
            type="number"
            inputMode="numeric"
            min={1}
            value={units}
            onInput={(e) => setUnits(e.currentTarget.value)}
          />
          <button type="submit" class="secondary" disabled={busy}>
            Restock
          </button>
        </form>
        <button
          type="button"
          class={!product.active ? "secondary" : "danger"}
          disabled={busy}
          onClick={() => update({ active: !product.active })}
        >
          {!product.active ? "Reactivate" : "Deactivate"}
          <span class="sr-only"> {name}</span>
        </button>
      </div>
    </li>
  );
}
