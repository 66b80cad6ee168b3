import datetime

from aviary.payments.v1 import payments_pb2 as _payments_pb2
from aviary.api.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_PENDING: _ClassVar[OrderStatus]
    ORDER_STATUS_CONFIRMED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELLED: _ClassVar[OrderStatus]

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_PENDING: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_PACKED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SHIPPED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_DELIVERED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_CANCELLED: _ClassVar[DeliveryStatus]
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_PENDING: OrderStatus
ORDER_STATUS_CONFIRMED: OrderStatus
ORDER_STATUS_CANCELLED: OrderStatus
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_PENDING: DeliveryStatus
DELIVERY_STATUS_PACKED: DeliveryStatus
DELIVERY_STATUS_SHIPPED: DeliveryStatus
DELIVERY_STATUS_DELIVERED: DeliveryStatus
DELIVERY_STATUS_CANCELLED: DeliveryStatus

class OrderItem(_message.Message):
    __slots__ = ("product_id", "seller_id", "title", "quantity", "unit_price_minor")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    seller_id: str
    title: str
    quantity: int
    unit_price_minor: int
    def __init__(self, product_id: _Optional[str] = ..., seller_id: _Optional[str] = ..., title: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price_minor: _Optional[int] = ...) -> None: ...

class DeliveryEvent(_message.Message):
    __slots__ = ("status", "time", "actor", "note", "seller_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    status: DeliveryStatus
    time: _timestamp_pb2.Timestamp
    actor: str
    note: str
    seller_id: str
    def __init__(self, status: _Optional[_Union[DeliveryStatus, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ..., seller_id: _Optional[str] = ...) -> None: ...

class Fulfilment(_message.Message):
    __slots__ = ("seller_id", "items", "subtotal_minor", "delivery_status", "delivery_history")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SUBTOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_HISTORY_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    items: _containers.RepeatedCompositeFieldContainer[OrderItem]
    subtotal_minor: int
    delivery_status: DeliveryStatus
    delivery_history: _containers.RepeatedCompositeFieldContainer[DeliveryEvent]
    def __init__(self, seller_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[OrderItem, _Mapping]]] = ..., subtotal_minor: _Optional[int] = ..., delivery_status: _Optional[_Union[DeliveryStatus, str]] = ..., delivery_history: _Optional[_Iterable[_Union[DeliveryEvent, _Mapping]]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("id", "buyer_id", "status", "items", "total_minor", "currency", "payment_status", "delivery_status", "delivery_history", "created_at", "idempotency_key", "fulfilments", "cancel_reason", "cancel_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_HISTORY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    FULFILMENTS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    buyer_id: str
    status: OrderStatus
    items: _containers.RepeatedCompositeFieldContainer[OrderItem]
    total_minor: int
    currency: str
    payment_status: _payments_pb2.PaymentStatus
    delivery_status: DeliveryStatus
    delivery_history: _containers.RepeatedCompositeFieldContainer[DeliveryEvent]
    created_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    fulfilments: _containers.RepeatedCompositeFieldContainer[Fulfilment]
    cancel_reason: str
    cancel_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., buyer_id: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., items: _Optional[_Iterable[_Union[OrderItem, _Mapping]]] = ..., total_minor: _Optional[int] = ..., currency: _Optional[str] = ..., payment_status: _Optional[_Union[_payments_pb2.PaymentStatus, str]] = ..., delivery_status: _Optional[_Union[DeliveryStatus, str]] = ..., delivery_history: _Optional[_Iterable[_Union[DeliveryEvent, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., fulfilments: _Optional[_Iterable[_Union[Fulfilment, _Mapping]]] = ..., cancel_reason: _Optional[str] = ..., cancel_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCheckoutRequest(_message.Message):
    __slots__ = ("idempotency_key", "payment_method", "expected_total_minor")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    payment_method: str
    expected_total_minor: int
    def __init__(self, idempotency_key: _Optional[str] = ..., payment_method: _Optional[str] = ..., expected_total_minor: _Optional[int] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "as_seller")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AS_SELLER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    as_seller: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., as_seller: _Optional[bool] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AdvanceDeliveryRequest(_message.Message):
    __slots__ = ("order_id", "status", "note")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: DeliveryStatus
    note: str
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., note: _Optional[str] = ...) -> None: ...

class OperatorAdvanceDeliveryRequest(_message.Message):
    __slots__ = ("order_id", "status", "note", "operator_name", "seller_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_NAME_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: DeliveryStatus
    note: str
    operator_name: str
    seller_id: str
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., note: _Optional[str] = ..., operator_name: _Optional[str] = ..., seller_id: _Optional[str] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
