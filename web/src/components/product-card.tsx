import type { Schemas } from "../api/client";
import { formatMoney } from "../shop/money";

type Product = Schemas["aviary.catalog.v1.Product"];

/** The products a post tags, each a card linking to its page. */
export function ProductCards({ products }: { products: Product[] }) {
  return (
    <ul class="product-tags" aria-label="Tagged products">
      {products.map((product) => (
        <li key={product.id} class="product-tag">
          <ProductLink product={product} />
        </li>
      ))}
    </ul>
  );
}

/** One product as a card's link: title, price, and a note when it is no longer sold. */
export function ProductLink({ product }: { product: Product }) {
  return (
    <a href={`/products/${product.id}`}>
      <span class="product-title">{product.title}</span>
      <span class="product-price">{formatMoney(product.priceMinor, product.currency)}</span>
      {!product.active && <span class="product-note">No longer sold</span>}
    </a>
  );
}
