// The shopping pages, loaded on first use: the home timeline does not pay for them.
import type { ShopRoute } from "./route";
import { CartPage, CheckoutPage } from "./cart";
import { OrderPage, OrdersPage } from "./orders";
import { ProductPage } from "./product";
import { SellerProductsPage } from "./seller";

export function ShopPage({ route }: { route: ShopRoute }) {
  switch (route.name) {
    case "product":
      return <ProductPage key={route.id} productId={route.id ?? ""} />;
    case "cart":
      return <CartPage />;
    case "checkout":
      return <CheckoutPage />;
    case "orders":
      return <OrdersPage key="buyer" />;
    case "order":
      return <OrderPage key={route.id} orderId={route.id ?? ""} />;
    case "seller-products":
      return <SellerProductsPage />;
    case "seller-orders":
      return <OrdersPage key="seller" asSeller />;
  }
}
