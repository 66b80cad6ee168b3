from aviary.posts.v1 import posts_pb2 as _posts_pb2
from aviary.api.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_OP_UNSPECIFIED: _ClassVar[DeliveryOp]
    DELIVERY_OP_ADD: _ClassVar[DeliveryOp]
    DELIVERY_OP_REMOVE: _ClassVar[DeliveryOp]
DELIVERY_OP_UNSPECIFIED: DeliveryOp
DELIVERY_OP_ADD: DeliveryOp
DELIVERY_OP_REMOVE: DeliveryOp

class TimelineEntry(_message.Message):
    __slots__ = ("post_id", "author_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ...) -> None: ...

class DeliverEntriesRequest(_message.Message):
    __slots__ = ("op", "entry", "user_ids")
    OP_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    op: DeliveryOp
    entry: TimelineEntry
    user_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, op: _Optional[_Union[DeliveryOp, str]] = ..., entry: _Optional[_Union[TimelineEntry, _Mapping]] = ..., user_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DeliverEntriesResponse(_message.Message):
    __slots__ = ("batches", "timelines", "skipped_inactive")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    TIMELINES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    batches: int
    timelines: int
    skipped_inactive: int
    def __init__(self, batches: _Optional[int] = ..., timelines: _Optional[int] = ..., skipped_inactive: _Optional[int] = ...) -> None: ...

class IndexAuthorPostRequest(_message.Message):
    __slots__ = ("op", "entry")
    OP_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    op: DeliveryOp
    entry: TimelineEntry
    def __init__(self, op: _Optional[_Union[DeliveryOp, str]] = ..., entry: _Optional[_Union[TimelineEntry, _Mapping]] = ...) -> None: ...

class IndexAuthorPostResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackfillAuthorRequest(_message.Message):
    __slots__ = ("user_id", "author_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    author_id: int
    def __init__(self, user_id: _Optional[int] = ..., author_id: _Optional[int] = ...) -> None: ...

class BackfillAuthorResponse(_message.Message):
    __slots__ = ("copied",)
    COPIED_FIELD_NUMBER: _ClassVar[int]
    copied: int
    def __init__(self, copied: _Optional[int] = ...) -> None: ...

class PurgeAuthorRequest(_message.Message):
    __slots__ = ("user_id", "author_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    author_id: int
    def __init__(self, user_id: _Optional[int] = ..., author_id: _Optional[int] = ...) -> None: ...

class PurgeAuthorResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class ApplyAuthorStatusRequest(_message.Message):
    __slots__ = ("author_id", "celebrity", "user_ids")
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    CELEBRITY_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    author_id: int
    celebrity: bool
    user_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, author_id: _Optional[int] = ..., celebrity: _Optional[bool] = ..., user_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ApplyAuthorStatusResponse(_message.Message):
    __slots__ = ("timelines", "copied")
    TIMELINES_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    timelines: int
    copied: int
    def __init__(self, timelines: _Optional[int] = ..., copied: _Optional[int] = ...) -> None: ...

class GetHomeTimelineRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetHomeTimelineResponse(_message.Message):
    __slots__ = ("posts", "next_page_token")
    POSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[_posts_pb2.Post]
    next_page_token: str
    def __init__(self, posts: _Optional[_Iterable[_Union[_posts_pb2.Post, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchHomeTimelineRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchHomeTimelineResponse(_message.Message):
    __slots__ = ("post",)
    POST_FIELD_NUMBER: _ClassVar[int]
    post: _posts_pb2.Post
    def __init__(self, post: _Optional[_Union[_posts_pb2.Post, _Mapping]] = ...) -> None: ...
