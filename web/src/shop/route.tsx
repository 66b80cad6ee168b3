import type { FunctionComponent } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./shop.css";

type Name = "product" | "cart" | "checkout" | "orders" | "order" | "seller-products" | "seller-orders";
export type ShopRoute = { name: Name; id?: string; title: string; signedOutOk: boolean };

const FIXED: Record<string, ShopRoute> = {
  "/cart": { name: "cart", title: "Cart", signedOutOk: false },
  "/checkout": { name: "checkout", title: "Checkout", signedOutOk: false },
  "/orders": { name: "orders", title: "Your orders", signedOutOk: false },
  "/seller/products": { name: "seller-products", title: "Your products", signedOutOk: false },
  "/seller/orders": { name: "seller-orders", title: "Orders to fulfil", signedOutOk: false },
};

/** The shopping page a path shows, or null when it is not one. */
export function shopRoute(path: string): ShopRoute | null {
  if (FIXED[path]) return FIXED[path];
  const product = /^\/products\/(\d{1,20})$/.exec(path);
  if (product) return { name: "product", id: product[1], title: "Product", signedOutOk: true };
  const order = /^\/orders\/(\d{1,20})$/.exec(path);
  if (order) return { name: "order", id: order[1], title: "Order", signedOutOk: false };
  return null;
}

type Pages = FunctionComponent<{ route: ShopRoute }>;
let loaded: Pages | null = null;

/** Loads the shopping pages' chunk once, then shows the route's page with its heading focused. */
export function ShopOutlet({ route }: { route: ShopRoute }) {
  const [Page, setPage] = useState<Pages | null>(() => loaded);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    if (Page) return;
    import("./pages")
      .then((module) => {
        loaded = module.ShopPage;
        setPage(() => module.ShopPage);
      })
      .catch(() => setFailed(true));
  }, []);

  // The app focuses the heading on navigation; the first visit's heading comes with the chunk.
  useEffect(() => {
    if (Page) document.querySelector<HTMLElement>("main h1")?.focus();
  }, [Page]);

  if (failed) {
    return (
      <div class="error" role="alert">
        <p>This page could not be loaded: check your connection and reload.</p>
      </div>
    );
  }
  if (!Page) {
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  }
  return <Page route={route} />;
}

/** Links to the shop for the signed-in header. */
export function ShopNav({ seller }: { seller: boolean }) {
  return (
    <nav aria-label="Shopping" class="shop-nav">
      <a href="/cart">Cart</a>
      <a href="/orders">Orders</a>
      {seller && <a href="/seller/products">Selling</a>}
    </nav>
  );
}
