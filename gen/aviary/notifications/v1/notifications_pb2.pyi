import datetime

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

class NotificationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_KIND_UNSPECIFIED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_FOLLOW: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_LIKE: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_REPOST: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_REPLY: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_MENTION: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_ORDER_STATUS: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_NEW_ORDER: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_ORDER_CANCELLED: _ClassVar[NotificationKind]
NOTIFICATION_KIND_UNSPECIFIED: NotificationKind
NOTIFICATION_KIND_FOLLOW: NotificationKind
NOTIFICATION_KIND_LIKE: NotificationKind
NOTIFICATION_KIND_REPOST: NotificationKind
NOTIFICATION_KIND_REPLY: NotificationKind
NOTIFICATION_KIND_MENTION: NotificationKind
NOTIFICATION_KIND_ORDER_STATUS: NotificationKind
NOTIFICATION_KIND_NEW_ORDER: NotificationKind
NOTIFICATION_KIND_ORDER_CANCELLED: NotificationKind

class Notification(_message.Message):
    __slots__ = ("id", "kind", "actor_ids", "post_id", "order_id", "text", "create_time", "read", "actor_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_IDS_FIELD_NUMBER: _ClassVar[int]
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    ACTOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: NotificationKind
    actor_ids: _containers.RepeatedScalarFieldContainer[str]
    post_id: str
    order_id: str
    text: str
    create_time: _timestamp_pb2.Timestamp
    read: bool
    actor_count: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[NotificationKind, str]] = ..., actor_ids: _Optional[_Iterable[str]] = ..., post_id: _Optional[str] = ..., order_id: _Optional[str] = ..., text: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read: _Optional[bool] = ..., actor_count: _Optional[int] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications", "next_page_token", "unread_count")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    next_page_token: str
    unread_count: int
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., unread_count: _Optional[int] = ...) -> None: ...

class WatchNotificationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchNotificationsResponse(_message.Message):
    __slots__ = ("notification", "replaces_id", "removed_id")
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    REPLACES_ID_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ID_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    replaces_id: str
    removed_id: str
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ..., replaces_id: _Optional[str] = ..., removed_id: _Optional[str] = ...) -> None: ...

class MarkNotificationsReadRequest(_message.Message):
    __slots__ = ("up_to_id",)
    UP_TO_ID_FIELD_NUMBER: _ClassVar[int]
    up_to_id: str
    def __init__(self, up_to_id: _Optional[str] = ...) -> None: ...

class MarkNotificationsReadResponse(_message.Message):
    __slots__ = ("marked",)
    MARKED_FIELD_NUMBER: _ClassVar[int]
    marked: int
    def __init__(self, marked: _Optional[int] = ...) -> None: ...
