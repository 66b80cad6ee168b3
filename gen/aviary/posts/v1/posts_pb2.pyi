import datetime

from aviary.catalog.v1 import catalog_pb2 as _catalog_pb2
from aviary.events.v1 import events_pb2 as _events_pb2
from aviary.identity.v1 import identity_pb2 as _identity_pb2
from aviary.media.v1 import media_pb2 as _media_pb2
from aviary.api.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Post(_message.Message):
    __slots__ = ("id", "author_id", "author", "text", "media_ids", "product_ids", "reply_to_id", "repost_of_id", "hashtags", "mentions", "like_count", "repost_count", "reply_count", "liked_by_me", "created_at", "media", "repost_of", "products")
    ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_IDS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_ID_FIELD_NUMBER: _ClassVar[int]
    REPOST_OF_ID_FIELD_NUMBER: _ClassVar[int]
    HASHTAGS_FIELD_NUMBER: _ClassVar[int]
    MENTIONS_FIELD_NUMBER: _ClassVar[int]
    LIKE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPOST_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LIKED_BY_ME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    REPOST_OF_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    author_id: str
    author: _identity_pb2.User
    text: str
    media_ids: _containers.RepeatedScalarFieldContainer[str]
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    reply_to_id: str
    repost_of_id: str
    hashtags: _containers.RepeatedScalarFieldContainer[str]
    mentions: _containers.RepeatedScalarFieldContainer[str]
    like_count: int
    repost_count: int
    reply_count: int
    liked_by_me: bool
    created_at: _timestamp_pb2.Timestamp
    media: _containers.RepeatedCompositeFieldContainer[_media_pb2.Media]
    repost_of: Post
    products: _containers.RepeatedCompositeFieldContainer[_catalog_pb2.Product]
    def __init__(self, id: _Optional[str] = ..., author_id: _Optional[str] = ..., author: _Optional[_Union[_identity_pb2.User, _Mapping]] = ..., text: _Optional[str] = ..., media_ids: _Optional[_Iterable[str]] = ..., product_ids: _Optional[_Iterable[str]] = ..., reply_to_id: _Optional[str] = ..., repost_of_id: _Optional[str] = ..., hashtags: _Optional[_Iterable[str]] = ..., mentions: _Optional[_Iterable[str]] = ..., like_count: _Optional[int] = ..., repost_count: _Optional[int] = ..., reply_count: _Optional[int] = ..., liked_by_me: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., media: _Optional[_Iterable[_Union[_media_pb2.Media, _Mapping]]] = ..., repost_of: _Optional[_Union[Post, _Mapping]] = ..., products: _Optional[_Iterable[_Union[_catalog_pb2.Product, _Mapping]]] = ...) -> None: ...

class CreatePostRequest(_message.Message):
    __slots__ = ("text", "media_ids", "product_ids", "reply_to_id", "repost_of_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_IDS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_ID_FIELD_NUMBER: _ClassVar[int]
    REPOST_OF_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    media_ids: _containers.RepeatedScalarFieldContainer[str]
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    reply_to_id: str
    repost_of_id: str
    def __init__(self, text: _Optional[str] = ..., media_ids: _Optional[_Iterable[str]] = ..., product_ids: _Optional[_Iterable[str]] = ..., reply_to_id: _Optional[str] = ..., repost_of_id: _Optional[str] = ...) -> None: ...

class GetPostRequest(_message.Message):
    __slots__ = ("post_id",)
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    def __init__(self, post_id: _Optional[str] = ...) -> None: ...

class RepostPostRequest(_message.Message):
    __slots__ = ("post_id",)
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    def __init__(self, post_id: _Optional[str] = ...) -> None: ...

class DeletePostRequest(_message.Message):
    __slots__ = ("post_id",)
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    def __init__(self, post_id: _Optional[str] = ...) -> None: ...

class ListUserPostsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUserPostsResponse(_message.Message):
    __slots__ = ("posts", "next_page_token")
    POSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[Post]
    next_page_token: str
    def __init__(self, posts: _Optional[_Iterable[_Union[Post, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class BatchGetPostsRequest(_message.Message):
    __slots__ = ("post_ids", "viewer_id", "skip_engagement")
    POST_IDS_FIELD_NUMBER: _ClassVar[int]
    VIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    SKIP_ENGAGEMENT_FIELD_NUMBER: _ClassVar[int]
    post_ids: _containers.RepeatedScalarFieldContainer[str]
    viewer_id: str
    skip_engagement: bool
    def __init__(self, post_ids: _Optional[_Iterable[str]] = ..., viewer_id: _Optional[str] = ..., skip_engagement: _Optional[bool] = ...) -> None: ...

class BatchGetPostsResponse(_message.Message):
    __slots__ = ("posts",)
    POSTS_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[Post]
    def __init__(self, posts: _Optional[_Iterable[_Union[Post, _Mapping]]] = ...) -> None: ...

class GetAuthorStatsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class BatchGetAuthorStatsRequest(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetAuthorStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[AuthorStats]
    def __init__(self, stats: _Optional[_Iterable[_Union[AuthorStats, _Mapping]]] = ...) -> None: ...

class AuthorStats(_message.Message):
    __slots__ = ("user_id", "post_count")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    POST_COUNT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    post_count: int
    def __init__(self, user_id: _Optional[str] = ..., post_count: _Optional[int] = ...) -> None: ...

class ListRepliesRequest(_message.Message):
    __slots__ = ("post_id", "page_size", "page_token")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    page_size: int
    page_token: str
    def __init__(self, post_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRepliesResponse(_message.Message):
    __slots__ = ("posts", "next_page_token")
    POSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[Post]
    next_page_token: str
    def __init__(self, posts: _Optional[_Iterable[_Union[Post, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListAuthorsPostIdsRequest(_message.Message):
    __slots__ = ("author_ids", "before_post_id", "per_author_limit", "limit")
    AUTHOR_IDS_FIELD_NUMBER: _ClassVar[int]
    BEFORE_POST_ID_FIELD_NUMBER: _ClassVar[int]
    PER_AUTHOR_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    author_ids: _containers.RepeatedScalarFieldContainer[int]
    before_post_id: int
    per_author_limit: int
    limit: int
    def __init__(self, author_ids: _Optional[_Iterable[int]] = ..., before_post_id: _Optional[int] = ..., per_author_limit: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class PostRef(_message.Message):
    __slots__ = ("post_id", "author_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ...) -> None: ...

class ListAuthorsPostIdsResponse(_message.Message):
    __slots__ = ("posts",)
    POSTS_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[PostRef]
    def __init__(self, posts: _Optional[_Iterable[_Union[PostRef, _Mapping]]] = ...) -> None: ...

class ExportPostsRequest(_message.Message):
    __slots__ = ("batch_size",)
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    def __init__(self, batch_size: _Optional[int] = ...) -> None: ...

class ExportPostsResponse(_message.Message):
    __slots__ = ("posts",)
    POSTS_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[_events_pb2.PostCreated]
    def __init__(self, posts: _Optional[_Iterable[_Union[_events_pb2.PostCreated, _Mapping]]] = ...) -> None: ...
