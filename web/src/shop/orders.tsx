import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../api/client";
import { authorized, session } from "../session";
import {
  ADVANCE_LABEL,
  cancellable,
  deliveryStatus,
  nextDeliverySteps,
  orderStatus,
  paymentStatus,
  when,
  type DeliveryStatus,
  type Order,
} from "./labels";
import { call, failure } from "./load";
import { formatMoney } from "./money";

type DeliveryEvent = NonNullable<Order["deliveryHistory"]>[number];
type Page = { orders: Order[]; nextPageToken: string };

async function fetchOrders(asSeller: boolean, pageToken?: string): Promise<Page> {
  const data = await call(
    api.GET("/v1/orders", {
      params: { query: { pageSize: 20, pageToken, asSeller: asSeller || undefined } },
      headers: await authorized(),
    }),
  );
  return { orders: data.orders ?? [], nextPageToken: data.nextPageToken ?? "" };
}

function itemSummary(order: Order): string {
  const items = order.items ?? [];
  const first = items[0]?.title || "An item";
  return items.length > 1 ? `${first} and ${items.length - 1} more` : first;
}

/** The caller's orders (as a buyer, or with asSeller the orders holding their products), newest first. */
export function OrdersPage({ asSeller = false }: { asSeller?: boolean }) {
  const [page, setPage] = useState<Page | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function load(pageToken?: string) {
    setLoading(true);
    setError(null);
    try {
      const next = await fetchOrders(asSeller, pageToken);
      setPage((known) => (pageToken && known ? { ...next, orders: [...known.orders, ...next.orders] } : next));
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => void load(), []);

  const title = asSeller ? "Orders to fulfil" : "Your orders";
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        {title}
      </h1>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load(page?.nextPageToken || undefined)}>
            Try again
          </button>
        </div>
      )}
      {loading && !page && (
        <p class="loading" role="status">
          Loading orders…
        </p>
      )}
      {page && page.orders.length === 0 && (
        <p class="empty">{asSeller ? "Nobody has bought your products yet." : "You have not ordered anything yet."}</p>
      )}
      {page && page.orders.length > 0 && (
        <ul class="orders" aria-label={title} aria-busy={loading}>
          {page.orders.map((order) => (
            <li key={order.id} class="order-row">
              <a href={`/orders/${order.id}`}>
                <span class="product-title">{itemSummary(order)}</span>
                <span>{formatMoney(order.totalMinor, order.currency)}</span>
              </a>
              <span class="order-meta">
                {orderStatus(order.status)} · {deliveryStatus(order.deliveryStatus)} · {when(order.createdAt)}
              </span>
            </li>
          ))}
        </ul>
      )}
      {page?.nextPageToken && (
        <button type="button" class="more" disabled={loading} onClick={() => load(page.nextPageToken)}>
          {loading ? "Loading…" : "Show older orders"}
        </button>
      )}
    </section>
  );
}

function History({ events, label }: { events: DeliveryEvent[]; label: string }) {
  if (events.length === 0) return <p class="empty">No delivery updates yet.</p>;
  return (
    <ol class="history" aria-label={label}>
      {events.map((event, index) => (
        <li key={`${event.time}-${index}`}>
          <strong>{deliveryStatus(event.status)}</strong> <time dateTime={event.time}>{when(event.time)}</time>
          {event.note && <span class="note"> · {event.note}</span>}
        </li>
      ))}
    </ol>
  );
}

/** One order: status, payment, lines and delivery history; the buyer may cancel, a seller advance their part. */
export function OrderPage({ orderId }: { orderId: string }) {
  const [order, setOrder] = useState<Order | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function load() {
    setLoading(true);
    setError(null);
    try {
      setOrder(
        await call(api.GET("/v1/orders/{orderId}", { params: { path: { orderId } }, headers: await authorized() })),
      );
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => void load(), []);

  const me = session()?.user.id;
  const asBuyer = order !== null && order.buyerId === me;
  // A seller sees only their own part of the order; it is theirs to move along.
  const ownPart = order?.fulfilments?.find((part) => part.sellerId === me);
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Order
      </h1>
      {error && (
        <div class="error" role="alert">
          <p>{error.status === 404 ? "This order does not exist or is not yours." : error.message}</p>
          {error.status !== 404 && (
            <button type="button" onClick={load}>
              Try again
            </button>
          )}
        </div>
      )}
      {loading && !order && (
        <p class="loading" role="status">
          Loading the order…
        </p>
      )}
      {order && (
        <>
          <dl class="facts" aria-busy={loading}>
            <dt>Order</dt>
            <dd>{order.id}</dd>
            <dt>Placed</dt>
            <dd>{when(order.createdAt)}</dd>
            <dt>Status</dt>
            <dd>{orderStatus(order.status)}</dd>
            <dt>Payment</dt>
            <dd>{paymentStatus(order.paymentStatus)}</dd>
            <dt>Delivery</dt>
            <dd>{deliveryStatus(order.deliveryStatus)}</dd>
            <dt>{asBuyer ? "Total" : "Your part"}</dt>
            <dd>{formatMoney(order.totalMinor, order.currency)}</dd>
          </dl>
          {order.cancelTime && (
            <p class="notice">
              Cancelled {when(order.cancelTime)}
              {order.cancelReason ? `: ${order.cancelReason}` : ""}
            </p>
          )}
          <h2>Items</h2>
          <ul class="cart-lines" aria-label="Items">
            {(order.items ?? []).map((item, index) => (
              <li key={`${item.productId}-${index}`} class="cart-line">
                <div class="line-main">
                  <a href={`/products/${item.productId}`} class="product-title">
                    {item.quantity} × {item.title || "A product"}
                  </a>
                  <span>{formatMoney(item.unitPriceMinor, order.currency)} each</span>
                </div>
              </li>
            ))}
          </ul>
          <h2>Delivery history</h2>
          <History events={order.deliveryHistory ?? []} label="Delivery history" />
          {(order.fulfilments?.length ?? 0) > 1 &&
            order.fulfilments?.map((part, index) => (
              <section key={part.sellerId} aria-label={`Parcel ${index + 1}`} class="parcel">
                <h3>
                  Parcel {index + 1}: {deliveryStatus(part.deliveryStatus)}
                </h3>
                <History events={part.deliveryHistory ?? []} label={`Parcel ${index + 1} history`} />
              </section>
            ))}
          <button type="button" class="secondary" disabled={loading} onClick={load}>
            Refresh
          </button>
          {asBuyer && cancellable(order) && <CancelOrder order={order} onDone={setOrder} />}
          {ownPart && order.status === "ORDER_STATUS_CONFIRMED" && (
            <AdvanceDelivery order={order} current={ownPart.deliveryStatus} onDone={setOrder} />
          )}
        </>
      )}
    </section>
  );
}

function CancelOrder({ order, onDone }: { order: Order; onDone: (order: Order) => void }) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function cancel(event: Event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      onDone(
        await call(
          api.POST("/v1/orders/{orderId}:cancel", {
            params: { path: { orderId: order.id ?? "" } },
            body: { reason: reason.trim() || undefined },
            headers: await authorized(),
          }),
        ),
      );
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="order-action" onSubmit={cancel} aria-label="Cancel the order">
      <h2>Cancel the order</h2>
      <p class="hint">Possible until it ships: the payment is refunded.</p>
      <label for="cancel-reason">Reason (optional)</label>
      <input id="cancel-reason" maxLength={280} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      <button type="submit" class="danger" disabled={busy}>
        {busy ? "Cancelling…" : "Cancel order"}
      </button>
    </form>
  );
}

type AdvanceProps = { order: Order; current?: DeliveryStatus; onDone: (order: Order) => void };

function AdvanceDelivery({ order, current, onDone }: AdvanceProps) {
  const steps = nextDeliverySteps(current);
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  if (steps.length === 0) return null;

  async function advance(status: DeliveryStatus) {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      onDone(
        await call(
          api.POST("/v1/orders/{orderId}:advanceDelivery", {
            params: { path: { orderId: order.id ?? "" } },
            body: { status, note: note.trim() || undefined },
            headers: await authorized(),
          }),
        ),
      );
      setNote("");
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="order-action" onSubmit={(e) => e.preventDefault()} aria-label="Advance delivery">
      <h2>Your parcel</h2>
      <label for="delivery-note">Note for the buyer (optional, e.g. a tracking number)</label>
      <input id="delivery-note" maxLength={280} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      <div class="actions">
        {steps.map((status) => (
          <button key={status} type="button" disabled={busy} onClick={() => advance(status)}>
            {ADVANCE_LABEL[status]}
          </button>
        ))}
      </div>
    </form>
  );
}
