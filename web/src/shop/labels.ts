import type { Schemas } from "../api/client";

export type Order = Schemas["aviary.orders.v1.Order"];
export type DeliveryStatus = NonNullable<Order["deliveryStatus"]>;

const ORDER_STATUS: Record<string, string> = {
  ORDER_STATUS_PENDING: "Pending",
  ORDER_STATUS_CONFIRMED: "Confirmed",
  ORDER_STATUS_CANCELLED: "Cancelled",
};

const PAYMENT_STATUS: Record<string, string> = {
  PAYMENT_STATUS_PENDING: "Pending",
  PAYMENT_STATUS_AUTHORIZED: "Authorized",
  PAYMENT_STATUS_DECLINED: "Declined",
  PAYMENT_STATUS_CAPTURED: "Paid",
  PAYMENT_STATUS_VOIDED: "Voided",
  PAYMENT_STATUS_REFUNDED: "Refunded",
};

const DELIVERY_STATUS: Record<string, string> = {
  DELIVERY_STATUS_PENDING: "Awaiting packing",
  DELIVERY_STATUS_PACKED: "Packed",
  DELIVERY_STATUS_SHIPPED: "Shipped",
  DELIVERY_STATUS_DELIVERED: "Delivered",
  DELIVERY_STATUS_CANCELLED: "Cancelled",
};

const unknown = "Unknown";
export const orderStatus = (status?: string) => ORDER_STATUS[status ?? ""] ?? unknown;
export const paymentStatus = (status?: string) => PAYMENT_STATUS[status ?? ""] ?? unknown;
export const deliveryStatus = (status?: string) => DELIVERY_STATUS[status ?? ""] ?? unknown;

/** The steps a seller may take next from a status (packing may be skipped). */
export function nextDeliverySteps(status?: string): DeliveryStatus[] {
  switch (status) {
    case "DELIVERY_STATUS_PENDING":
      return ["DELIVERY_STATUS_PACKED", "DELIVERY_STATUS_SHIPPED"];
    case "DELIVERY_STATUS_PACKED":
      return ["DELIVERY_STATUS_SHIPPED"];
    case "DELIVERY_STATUS_SHIPPED":
      return ["DELIVERY_STATUS_DELIVERED"];
    default:
      return [];
  }
}

export const ADVANCE_LABEL: Record<string, string> = {
  DELIVERY_STATUS_PACKED: "Mark as packed",
  DELIVERY_STATUS_SHIPPED: "Mark as shipped",
  DELIVERY_STATUS_DELIVERED: "Mark as delivered",
};

/** The buyer may cancel a confirmed order until any part of it has shipped. */
export function cancellable(order: Order): boolean {
  if (order.status !== "ORDER_STATUS_CONFIRMED") return false;
  const parts = order.fulfilments?.length ? order.fulfilments.map((f) => f.deliveryStatus) : [order.deliveryStatus];
  return parts.every((status) => status === "DELIVERY_STATUS_PENDING" || status === "DELIVERY_STATUS_PACKED");
}

export function when(time?: string): string {
  return time ? new Date(time).toLocaleString() : "";
}
