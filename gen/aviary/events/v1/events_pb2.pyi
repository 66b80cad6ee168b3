import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PostEvent(_message.Message):
    __slots__ = ("event_id", "occur_time", "created", "deleted")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    occur_time: _timestamp_pb2.Timestamp
    created: PostCreated
    deleted: PostDeleted
    def __init__(self, event_id: _Optional[int] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created: _Optional[_Union[PostCreated, _Mapping]] = ..., deleted: _Optional[_Union[PostDeleted, _Mapping]] = ...) -> None: ...

class PostCreated(_message.Message):
    __slots__ = ("post_id", "author_id", "text", "reply_to_id", "repost_of_id", "hashtags", "mentions", "product_ids", "media_ids", "created_at", "reply_to_author_id", "repost_of_author_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_ID_FIELD_NUMBER: _ClassVar[int]
    REPOST_OF_ID_FIELD_NUMBER: _ClassVar[int]
    HASHTAGS_FIELD_NUMBER: _ClassVar[int]
    MENTIONS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    REPOST_OF_AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    text: str
    reply_to_id: int
    repost_of_id: int
    hashtags: _containers.RepeatedScalarFieldContainer[str]
    mentions: _containers.RepeatedScalarFieldContainer[str]
    product_ids: _containers.RepeatedScalarFieldContainer[int]
    media_ids: _containers.RepeatedScalarFieldContainer[int]
    created_at: _timestamp_pb2.Timestamp
    reply_to_author_id: int
    repost_of_author_id: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., text: _Optional[str] = ..., reply_to_id: _Optional[int] = ..., repost_of_id: _Optional[int] = ..., hashtags: _Optional[_Iterable[str]] = ..., mentions: _Optional[_Iterable[str]] = ..., product_ids: _Optional[_Iterable[int]] = ..., media_ids: _Optional[_Iterable[int]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reply_to_author_id: _Optional[int] = ..., repost_of_author_id: _Optional[int] = ...) -> None: ...

class PostDeleted(_message.Message):
    __slots__ = ("post_id", "author_id", "reply_to_id", "repost_of_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_ID_FIELD_NUMBER: _ClassVar[int]
    REPOST_OF_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    reply_to_id: int
    repost_of_id: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., reply_to_id: _Optional[int] = ..., repost_of_id: _Optional[int] = ...) -> None: ...

class GraphEvent(_message.Message):
    __slots__ = ("event_id", "occur_time", "follow_created", "follow_removed", "celebrity_changed")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_CREATED_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_REMOVED_FIELD_NUMBER: _ClassVar[int]
    CELEBRITY_CHANGED_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    occur_time: _timestamp_pb2.Timestamp
    follow_created: FollowCreated
    follow_removed: FollowRemoved
    celebrity_changed: CelebrityChanged
    def __init__(self, event_id: _Optional[int] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., follow_created: _Optional[_Union[FollowCreated, _Mapping]] = ..., follow_removed: _Optional[_Union[FollowRemoved, _Mapping]] = ..., celebrity_changed: _Optional[_Union[CelebrityChanged, _Mapping]] = ...) -> None: ...

class FollowCreated(_message.Message):
    __slots__ = ("follower_id", "followee_id")
    FOLLOWER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWEE_ID_FIELD_NUMBER: _ClassVar[int]
    follower_id: int
    followee_id: int
    def __init__(self, follower_id: _Optional[int] = ..., followee_id: _Optional[int] = ...) -> None: ...

class FollowRemoved(_message.Message):
    __slots__ = ("follower_id", "followee_id")
    FOLLOWER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWEE_ID_FIELD_NUMBER: _ClassVar[int]
    follower_id: int
    followee_id: int
    def __init__(self, follower_id: _Optional[int] = ..., followee_id: _Optional[int] = ...) -> None: ...

class CelebrityChanged(_message.Message):
    __slots__ = ("user_id", "celebrity", "follower_count")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CELEBRITY_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_COUNT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    celebrity: bool
    follower_count: int
    def __init__(self, user_id: _Optional[int] = ..., celebrity: _Optional[bool] = ..., follower_count: _Optional[int] = ...) -> None: ...

class EngagementEvent(_message.Message):
    __slots__ = ("event_id", "occur_time", "like_created", "like_removed")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    LIKE_CREATED_FIELD_NUMBER: _ClassVar[int]
    LIKE_REMOVED_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    occur_time: _timestamp_pb2.Timestamp
    like_created: LikeCreated
    like_removed: LikeRemoved
    def __init__(self, event_id: _Optional[int] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., like_created: _Optional[_Union[LikeCreated, _Mapping]] = ..., like_removed: _Optional[_Union[LikeRemoved, _Mapping]] = ...) -> None: ...

class LikeCreated(_message.Message):
    __slots__ = ("post_id", "user_id", "post_author_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    POST_AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    user_id: int
    post_author_id: int
    def __init__(self, post_id: _Optional[int] = ..., user_id: _Optional[int] = ..., post_author_id: _Optional[int] = ...) -> None: ...

class LikeRemoved(_message.Message):
    __slots__ = ("post_id", "user_id", "post_author_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    POST_AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    user_id: int
    post_author_id: int
    def __init__(self, post_id: _Optional[int] = ..., user_id: _Optional[int] = ..., post_author_id: _Optional[int] = ...) -> None: ...

class ProductEvent(_message.Message):
    __slots__ = ("event_id", "occur_time", "upserted")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    occur_time: _timestamp_pb2.Timestamp
    upserted: ProductUpserted
    def __init__(self, event_id: _Optional[int] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., upserted: _Optional[_Union[ProductUpserted, _Mapping]] = ...) -> None: ...

class ProductUpserted(_message.Message):
    __slots__ = ("product_id", "seller_id", "title", "description", "price_minor", "currency", "media_ids", "active", "created_at")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MEDIA_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    seller_id: int
    title: str
    description: str
    price_minor: int
    currency: str
    media_ids: _containers.RepeatedScalarFieldContainer[int]
    active: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[int] = ..., seller_id: _Optional[int] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., price_minor: _Optional[int] = ..., currency: _Optional[str] = ..., media_ids: _Optional[_Iterable[int]] = ..., active: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrderEvent(_message.Message):
    __slots__ = ("event_id", "occur_time", "confirmed", "delivery_changed", "cancelled")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_CHANGED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    occur_time: _timestamp_pb2.Timestamp
    confirmed: OrderConfirmed
    delivery_changed: DeliveryStatusChanged
    cancelled: OrderCancelled
    def __init__(self, event_id: _Optional[int] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confirmed: _Optional[_Union[OrderConfirmed, _Mapping]] = ..., delivery_changed: _Optional[_Union[DeliveryStatusChanged, _Mapping]] = ..., cancelled: _Optional[_Union[OrderCancelled, _Mapping]] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("product_id", "seller_id", "quantity", "unit_price_minor")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    seller_id: int
    quantity: int
    unit_price_minor: int
    def __init__(self, product_id: _Optional[int] = ..., seller_id: _Optional[int] = ..., quantity: _Optional[int] = ..., unit_price_minor: _Optional[int] = ...) -> None: ...

class OrderConfirmed(_message.Message):
    __slots__ = ("order_id", "buyer_id", "lines", "total_minor", "currency")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    buyer_id: int
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    total_minor: int
    currency: str
    def __init__(self, order_id: _Optional[int] = ..., buyer_id: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., total_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class DeliveryStatusChanged(_message.Message):
    __slots__ = ("order_id", "buyer_id", "status", "note", "seller_id", "fulfilment_status", "fulfilment_count")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    FULFILMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    FULFILMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    buyer_id: int
    status: str
    note: str
    seller_id: int
    fulfilment_status: str
    fulfilment_count: int
    def __init__(self, order_id: _Optional[int] = ..., buyer_id: _Optional[int] = ..., status: _Optional[str] = ..., note: _Optional[str] = ..., seller_id: _Optional[int] = ..., fulfilment_status: _Optional[str] = ..., fulfilment_count: _Optional[int] = ...) -> None: ...

class OrderCancelled(_message.Message):
    __slots__ = ("order_id", "buyer_id", "lines", "total_minor", "currency", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    buyer_id: int
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    total_minor: int
    currency: str
    reason: str
    def __init__(self, order_id: _Optional[int] = ..., buyer_id: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., total_minor: _Optional[int] = ..., currency: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
