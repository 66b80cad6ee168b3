import datetime

from aviary.api.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CartItem(_message.Message):
    __slots__ = ("product_id", "quantity", "unit_price_minor", "title", "available", "added_unit_price_minor", "price_changed")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ADDED_UNIT_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    PRICE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    quantity: int
    unit_price_minor: int
    title: str
    available: bool
    added_unit_price_minor: int
    price_changed: bool
    def __init__(self, product_id: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price_minor: _Optional[int] = ..., title: _Optional[str] = ..., available: _Optional[bool] = ..., added_unit_price_minor: _Optional[int] = ..., price_changed: _Optional[bool] = ...) -> None: ...

class Cart(_message.Message):
    __slots__ = ("items", "total_minor", "currency", "expires_at", "user_id", "price_increased")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_INCREASED_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[CartItem]
    total_minor: int
    currency: str
    expires_at: _timestamp_pb2.Timestamp
    user_id: str
    price_increased: bool
    def __init__(self, items: _Optional[_Iterable[_Union[CartItem, _Mapping]]] = ..., total_minor: _Optional[int] = ..., currency: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_id: _Optional[str] = ..., price_increased: _Optional[bool] = ...) -> None: ...

class GetCartRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AddCartItemRequest(_message.Message):
    __slots__ = ("product_id", "quantity")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    quantity: int
    def __init__(self, product_id: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class UpdateCartItemRequest(_message.Message):
    __slots__ = ("product_id", "quantity")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    quantity: int
    def __init__(self, product_id: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class RemoveCartItemRequest(_message.Message):
    __slots__ = ("product_id",)
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    def __init__(self, product_id: _Optional[str] = ...) -> None: ...

class GetUserCartRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ClearCheckedOutItemsRequest(_message.Message):
    __slots__ = ("user_id", "checkout_id", "items")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    checkout_id: str
    items: _containers.RepeatedCompositeFieldContainer[CartItem]
    def __init__(self, user_id: _Optional[str] = ..., checkout_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[CartItem, _Mapping]]] = ...) -> None: ...
