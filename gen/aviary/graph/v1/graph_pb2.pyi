from aviary.identity.v1 import identity_pb2 as _identity_pb2
from aviary.api.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FollowUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class FollowUserResponse(_message.Message):
    __slots__ = ("follower_id", "followee_id", "following", "created")
    FOLLOWER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWEE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWING_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    follower_id: str
    followee_id: str
    following: bool
    created: bool
    def __init__(self, follower_id: _Optional[str] = ..., followee_id: _Optional[str] = ..., following: _Optional[bool] = ..., created: _Optional[bool] = ...) -> None: ...

class UnfollowUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class UnfollowUserResponse(_message.Message):
    __slots__ = ("follower_id", "followee_id", "following", "removed")
    FOLLOWER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWEE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWING_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    follower_id: str
    followee_id: str
    following: bool
    removed: bool
    def __init__(self, follower_id: _Optional[str] = ..., followee_id: _Optional[str] = ..., following: _Optional[bool] = ..., removed: _Optional[bool] = ...) -> None: ...

class ListFollowersRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFollowersResponse(_message.Message):
    __slots__ = ("users", "next_page_token")
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_identity_pb2.User]
    next_page_token: str
    def __init__(self, users: _Optional[_Iterable[_Union[_identity_pb2.User, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListFollowingRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFollowingResponse(_message.Message):
    __slots__ = ("users", "next_page_token")
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_identity_pb2.User]
    next_page_token: str
    def __init__(self, users: _Optional[_Iterable[_Union[_identity_pb2.User, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetFollowStatsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class BatchGetFollowStatsRequest(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetFollowStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[FollowStats]
    def __init__(self, stats: _Optional[_Iterable[_Union[FollowStats, _Mapping]]] = ...) -> None: ...

class FollowStats(_message.Message):
    __slots__ = ("user_id", "follower_count", "following_count", "celebrity")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_COUNT_FIELD_NUMBER: _ClassVar[int]
    FOLLOWING_COUNT_FIELD_NUMBER: _ClassVar[int]
    CELEBRITY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    follower_count: int
    following_count: int
    celebrity: bool
    def __init__(self, user_id: _Optional[str] = ..., follower_count: _Optional[int] = ..., following_count: _Optional[int] = ..., celebrity: _Optional[bool] = ...) -> None: ...

class ListFollowedCelebritiesRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListFollowedCelebritiesResponse(_message.Message):
    __slots__ = ("celebrity_ids",)
    CELEBRITY_IDS_FIELD_NUMBER: _ClassVar[int]
    celebrity_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, celebrity_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class StreamFollowersRequest(_message.Message):
    __slots__ = ("user_id", "batch_size")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    batch_size: int
    def __init__(self, user_id: _Optional[str] = ..., batch_size: _Optional[int] = ...) -> None: ...

class FollowerBatch(_message.Message):
    __slots__ = ("follower_ids",)
    FOLLOWER_IDS_FIELD_NUMBER: _ClassVar[int]
    follower_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, follower_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ListFolloweeIdsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListFolloweeIdsResponse(_message.Message):
    __slots__ = ("followee_ids", "celebrity_ids")
    FOLLOWEE_IDS_FIELD_NUMBER: _ClassVar[int]
    CELEBRITY_IDS_FIELD_NUMBER: _ClassVar[int]
    followee_ids: _containers.RepeatedScalarFieldContainer[int]
    celebrity_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, followee_ids: _Optional[_Iterable[int]] = ..., celebrity_ids: _Optional[_Iterable[int]] = ...) -> None: ...
