from aviary.api.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PostEngagement(_message.Message):
    __slots__ = ("post_id", "like_count", "repost_count", "reply_count", "liked_by_me")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    LIKE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPOST_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LIKED_BY_ME_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    like_count: int
    repost_count: int
    reply_count: int
    liked_by_me: bool
    def __init__(self, post_id: _Optional[str] = ..., like_count: _Optional[int] = ..., repost_count: _Optional[int] = ..., reply_count: _Optional[int] = ..., liked_by_me: _Optional[bool] = ...) -> None: ...

class LikePostRequest(_message.Message):
    __slots__ = ("post_id",)
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    def __init__(self, post_id: _Optional[str] = ...) -> None: ...

class UnlikePostRequest(_message.Message):
    __slots__ = ("post_id",)
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    def __init__(self, post_id: _Optional[str] = ...) -> None: ...

class BatchGetEngagementRequest(_message.Message):
    __slots__ = ("post_ids", "viewer_id")
    POST_IDS_FIELD_NUMBER: _ClassVar[int]
    VIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    post_ids: _containers.RepeatedScalarFieldContainer[str]
    viewer_id: str
    def __init__(self, post_ids: _Optional[_Iterable[str]] = ..., viewer_id: _Optional[str] = ...) -> None: ...

class BatchGetEngagementResponse(_message.Message):
    __slots__ = ("engagements",)
    ENGAGEMENTS_FIELD_NUMBER: _ClassVar[int]
    engagements: _containers.RepeatedCompositeFieldContainer[PostEngagement]
    def __init__(self, engagements: _Optional[_Iterable[_Union[PostEngagement, _Mapping]]] = ...) -> None: ...

class StreamEngagementRequest(_message.Message):
    __slots__ = ("request_id", "batch")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    batch: BatchGetEngagementRequest
    def __init__(self, request_id: _Optional[int] = ..., batch: _Optional[_Union[BatchGetEngagementRequest, _Mapping]] = ...) -> None: ...

class StreamEngagementResponse(_message.Message):
    __slots__ = ("request_id", "batch", "status_code", "status_message")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    batch: BatchGetEngagementResponse
    status_code: int
    status_message: str
    def __init__(self, request_id: _Optional[int] = ..., batch: _Optional[_Union[BatchGetEngagementResponse, _Mapping]] = ..., status_code: _Optional[int] = ..., status_message: _Optional[str] = ...) -> None: ...
