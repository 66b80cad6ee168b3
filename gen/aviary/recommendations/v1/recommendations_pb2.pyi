from aviary.catalog.v1 import catalog_pb2 as _catalog_pb2
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

class RecommendationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOMMENDATION_REASON_UNSPECIFIED: _ClassVar[RecommendationReason]
    RECOMMENDATION_REASON_ENGAGED: _ClassVar[RecommendationReason]
    RECOMMENDATION_REASON_FOLLOWED_SELLER: _ClassVar[RecommendationReason]
    RECOMMENDATION_REASON_POPULAR: _ClassVar[RecommendationReason]
RECOMMENDATION_REASON_UNSPECIFIED: RecommendationReason
RECOMMENDATION_REASON_ENGAGED: RecommendationReason
RECOMMENDATION_REASON_FOLLOWED_SELLER: RecommendationReason
RECOMMENDATION_REASON_POPULAR: RecommendationReason

class ListRecommendationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("product", "score", "reason")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    product: _catalog_pb2.Product
    score: float
    reason: RecommendationReason
    def __init__(self, product: _Optional[_Union[_catalog_pb2.Product, _Mapping]] = ..., score: _Optional[float] = ..., reason: _Optional[_Union[RecommendationReason, str]] = ...) -> None: ...

class ListRecommendationsResponse(_message.Message):
    __slots__ = ("recommendations", "next_page_token")
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    next_page_token: str
    def __init__(self, recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetFeedSignalsRequest(_message.Message):
    __slots__ = ("user_id", "max_products", "max_authors")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    MAX_AUTHORS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    max_products: int
    max_authors: int
    def __init__(self, user_id: _Optional[int] = ..., max_products: _Optional[int] = ..., max_authors: _Optional[int] = ...) -> None: ...

class ProductCandidate(_message.Message):
    __slots__ = ("product_id", "score", "reason")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    score: float
    reason: RecommendationReason
    def __init__(self, product_id: _Optional[int] = ..., score: _Optional[float] = ..., reason: _Optional[_Union[RecommendationReason, str]] = ...) -> None: ...

class AuthorAffinity(_message.Message):
    __slots__ = ("author_id", "score")
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    author_id: int
    score: float
    def __init__(self, author_id: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class GetFeedSignalsResponse(_message.Message):
    __slots__ = ("products", "authors")
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[ProductCandidate]
    authors: _containers.RepeatedCompositeFieldContainer[AuthorAffinity]
    def __init__(self, products: _Optional[_Iterable[_Union[ProductCandidate, _Mapping]]] = ..., authors: _Optional[_Iterable[_Union[AuthorAffinity, _Mapping]]] = ...) -> None: ...
