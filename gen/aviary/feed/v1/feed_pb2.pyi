from aviary.catalog.v1 import catalog_pb2 as _catalog_pb2
from aviary.posts.v1 import posts_pb2 as _posts_pb2
from aviary.recommendations.v1 import recommendations_pb2 as _recommendations_pb2
from aviary.api.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetFeedRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class FeedItem(_message.Message):
    __slots__ = ("post", "product", "reason")
    POST_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    post: _posts_pb2.Post
    product: _catalog_pb2.Product
    reason: _recommendations_pb2.RecommendationReason
    def __init__(self, post: _Optional[_Union[_posts_pb2.Post, _Mapping]] = ..., product: _Optional[_Union[_catalog_pb2.Product, _Mapping]] = ..., reason: _Optional[_Union[_recommendations_pb2.RecommendationReason, str]] = ...) -> None: ...

class GetFeedResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[FeedItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[FeedItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
