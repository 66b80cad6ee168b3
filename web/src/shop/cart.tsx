import { useRef, useState } from "preact/hooks";
import { api, ApiError, apiError, networkError, type Schemas } from "../api/client";
import { navigate } from "../router";
import { authorized } from "../session";
import { call, failure, newIdempotencyKey, useResource } from "./load";
import { formatMoney } from "./money";

type Cart = Schemas["aviary.cart.v1.Cart"];
type CartItem = Schemas["aviary.cart.v1.CartItem"];

async function fetchCart(): Promise<Cart> {
  return call(api.GET("/v1/cart", { headers: await authorized() }));
}

// A rise is what the buyer must agree to; a drop is only news.
const rose = (item: CartItem) => BigInt(item.unitPriceMinor ?? "0") > BigInt(item.addedUnitPriceMinor ?? "0");

const lineTotal = (item: CartItem) => (BigInt(item.unitPriceMinor ?? "0") * BigInt(item.quantity ?? 0)).toString();

function LineNotices({ item, currency }: { item: CartItem; currency?: string }) {
  return (
    <>
      {!item.available && (
        <p class="line-notice warn">No longer available: remove it to check out.</p>
      )}
      {item.available && item.priceChanged && (
        <p class={rose(item) ? "line-notice warn" : "line-notice"}>
          Price changed since you added it: was {formatMoney(item.addedUnitPriceMinor, currency)}, now{" "}
          {formatMoney(item.unitPriceMinor, currency)}.
        </p>
      )}
    </>
  );
}

function CartStatus({ cart }: { cart: Cart }) {
  const changed = cart.items?.some((item) => item.priceChanged && item.available);
  if (!changed) return null;
  return (
    <p class={cart.priceIncreased ? "notice warn" : "notice"} role="status">
      {cart.priceIncreased
        ? "Some prices went up since you added them. Check the total before you pay."
        : "Some prices changed since you added them."}
    </p>
  );
}

/** The caller's cart: quantities, removal, price-change notices, the total. */
export function CartPage() {
  const cart = useResource(fetchCart, []);
  const [busyLine, setBusyLine] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const items = cart.data?.items ?? [];

  async function change(productId: string, request: () => Promise<Cart>) {
    setBusyLine(productId);
    setError(null);
    try {
      cart.set(await request());
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setBusyLine(null);
    }
  }

  const setQuantity = (productId: string, quantity: number) =>
    change(productId, async () =>
      call(
        api.PATCH("/v1/cart/items/{productId}", {
          params: { path: { productId } },
          body: { quantity },
          headers: await authorized(),
        }),
      ),
    );
  const remove = (productId: string) =>
    change(productId, async () =>
      call(
        api.DELETE("/v1/cart/items/{productId}", { params: { path: { productId } }, headers: await authorized() }),
      ),
    );

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Cart
      </h1>
      {(cart.error || error) && (
        <div class="error" role="alert">
          <p>{(error ?? cart.error)?.message}</p>
          {cart.error && (
            <button type="button" onClick={cart.reload}>
              Try again
            </button>
          )}
        </div>
      )}
      {cart.loading && !cart.data && (
        <p class="loading" role="status">
          Loading your cart…
        </p>
      )}
      {cart.data && items.length === 0 && <p class="empty">Your cart is empty.</p>}
      {cart.data && items.length > 0 && (
        <>
          <CartStatus cart={cart.data} />
          <ul class="cart-lines" aria-label="Cart items" aria-busy={busyLine !== null}>
            {items.map((item) => {
              const id = item.productId ?? "";
              return (
                <li key={id} class="cart-line">
                  <div class="line-main">
                    <a href={`/products/${id}`} class="product-title">
                      {item.title || "A product"}
                    </a>
                    <span>{formatMoney(item.unitPriceMinor, cart.data?.currency)} each</span>
                  </div>
                  <LineNotices item={item} currency={cart.data?.currency} />
                  <div class="line-actions">
                    <label for={`qty-${id}`}>Quantity of {item.title || "this product"}</label>
                    <input
                      id={`qty-${id}`}
                      type="number"
                      inputMode="numeric"
                      min={1}
                      max={100}
                      value={item.quantity}
                      disabled={busyLine === id}
                      onChange={(e) => {
                        const quantity = Math.max(1, Math.min(100, Number(e.currentTarget.value) || 1));
                        if (quantity !== item.quantity) void setQuantity(id, quantity);
                      }}
                    />
                    <button type="button" class="secondary" disabled={busyLine === id} onClick={() => remove(id)}>
                      Remove<span class="sr-only"> {item.title}</span>
                    </button>
                  </div>
                </li>
              );
            })}
          </ul>
          <p class="total">
            Total: <strong>{formatMoney(cart.data.totalMinor, cart.data.currency)}</strong>
          </p>
          {items.some((item) => !item.available) ? (
            <p class="notice">Remove the items no longer available to check out.</p>
          ) : (
            <a class="button-link" href="/checkout">
              Check out
            </a>
          )}
        </>
      )}
    </section>
  );
}

const PAYMENT_METHODS = [
  { id: "pm_card_visa", label: "Test card: Visa" },
  { id: "pm_card_mastercard", label: "Test card: Mastercard" },
  { id: "pm_card_amex", label: "Test card: American Express" },
];

// The key of the checkout attempt in flight, kept across reloads of the tab
// so a retry after a lost answer reuses it and never buys twice. It belongs
// to one cart: a cart changed since then is another purchase with a new key.
const KEY_STORAGE = "aviary.checkout.key";

function cartSignature(cart: Cart): string {
  const lines = (cart.items ?? []).map((item) => `${item.productId}x${item.quantity}`);
  return `${lines.join(",")}=${cart.totalMinor ?? "0"}`;
}

function attemptKey(cart: Cart): string {
  const signature = cartSignature(cart);
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY_STORAGE) ?? "null") as { key: string; cart: string } | null;
    if (stored?.key && stored.cart === signature) return stored.key;
  } catch {
    // Unreadable: start a new attempt.
  }
  const key = newIdempotencyKey();
  sessionStorage.setItem(KEY_STORAGE, JSON.stringify({ key, cart: signature }));
  return key;
}

function endAttempt(): void {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** A refusal that will not change on a retry with the same key: the next attempt gets a new one. */
function isFinal(error: ApiError): boolean {
  return error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}

type Detail = { metadata?: Record<string, string> };

/** The new total a 412 names when the priced cart differs from what the buyer was shown. */
function changedTotal(body: unknown): string | null {
  const details = ((body ?? {}) as { details?: Detail[] }).details ?? [];
  return details.find((detail) => detail.metadata?.totalMinor)?.metadata?.totalMinor ?? null;
}

/** Review the cart and pay: one idempotency key per attempt, the shown total sent as expected. */
export function CheckoutPage() {
  const cart = useResource(fetchCart, []);
  const [method, setMethod] = useState(PAYMENT_METHODS[0].id);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [newTotal, setNewTotal] = useState<string | null>(null);
  // A state update is not seen by a second click in the same tick; a ref is.
  const inFlight = useRef(false);
  const data = cart.data;
  const items = data?.items ?? [];
  const blocked = items.some((item) => !item.available);

  async function placeOrder() {
    if (inFlight.current || !data) return;
    inFlight.current = true;
    setBusy(true);
    setError(null);
    setNewTotal(null);
    try {
      const result = await api
        .POST("/v1/checkouts", {
          body: { idempotencyKey: attemptKey(data), paymentMethod: method, expectedTotalMinor: data.totalMinor ?? "0" },
          headers: await authorized(),
        })
        .catch((cause) => Promise.reject(networkError(cause)));
      if (!result.response.ok || !result.data) {
        const refusal = apiError(result.response, result.error);
        const total = result.response.status === 412 ? changedTotal(result.error) : null;
        if (total) setNewTotal(total);
        throw refusal;
      }
      endAttempt();
      navigate(`/orders/${result.data.id}`);
    } catch (cause) {
      const refusal = failure(cause);
      if (isFinal(refusal)) endAttempt();
      setError(refusal);
      // Show the cart as it is priced now (the new total is what the next attempt sends).
      if (refusal.status === 412) void cart.reload();
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Checkout
      </h1>
      {newTotal && data && (
        <div class="error" role="alert">
          <p>
            The total changed to <strong>{formatMoney(newTotal, data.currency)}</strong> since you saw it. Nothing was
            charged. Check the items below and place the order again to pay the new total.
          </p>
        </div>
      )}
      {error && !newTotal && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          {!isFinal(error) && <p>Placing the order again is safe: you will not be charged twice.</p>}
        </div>
      )}
      {cart.error && (
        <div class="error" role="alert">
          <p>{cart.error.message}</p>
          <button type="button" onClick={cart.reload}>
            Try again
          </button>
        </div>
      )}
      {cart.loading && !data && (
        <p class="loading" role="status">
          Loading your cart…
        </p>
      )}
      {data && items.length === 0 && (
        <p class="empty">
          Your cart is empty. <a href="/home">Find something to buy</a>
        </p>
      )}
      {data && items.length > 0 && (
        <>
          <CartStatus cart={data} />
          <ul class="cart-lines" aria-label="Items to buy">
            {items.map((item) => (
              <li key={item.productId} class="cart-line">
                <div class="line-main">
                  <span>
                    {item.quantity} × {item.title || "A product"}
                  </span>
                  <span>{formatMoney(lineTotal(item), data.currency)}</span>
                </div>
                <LineNotices item={item} currency={data.currency} />
              </li>
            ))}
          </ul>
          <p class="total">
            Total: <strong>{formatMoney(data.totalMinor, data.currency)}</strong>
          </p>
          <label for="payment-method">Payment method</label>
          <select id="payment-method" value={method} onChange={(e) => setMethod(e.currentTarget.value)}>
            {PAYMENT_METHODS.map((option) => (
              <option key={option.id} value={option.id}>
                {option.label}
              </option>
            ))}
          </select>
          {blocked ? (
            <p class="notice">
              Some items are no longer available: <a href="/cart">remove them from your cart</a> first.
            </p>
          ) : (
            <button type="button" class="checkout" disabled={busy} aria-busy={busy} onClick={placeOrder}>
              {busy ? "Placing your order…" : `Place order · ${formatMoney(data.totalMinor, data.currency)}`}
            </button>
          )}
          <p class="hint">
            <a href="/cart">Change the cart</a>
          </p>
        </>
      )}
    </section>
  );
}
