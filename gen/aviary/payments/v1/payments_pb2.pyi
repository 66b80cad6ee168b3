import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PENDING: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_AUTHORIZED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_DECLINED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_CAPTURED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_VOIDED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_REFUNDED: _ClassVar[PaymentStatus]

class LedgerOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEDGER_OPERATION_UNSPECIFIED: _ClassVar[LedgerOperation]
    LEDGER_OPERATION_AUTHORIZE: _ClassVar[LedgerOperation]
    LEDGER_OPERATION_CAPTURE: _ClassVar[LedgerOperation]
    LEDGER_OPERATION_VOID: _ClassVar[LedgerOperation]
    LEDGER_OPERATION_REFUND: _ClassVar[LedgerOperation]

class LedgerOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEDGER_OUTCOME_UNSPECIFIED: _ClassVar[LedgerOutcome]
    LEDGER_OUTCOME_SUCCEEDED: _ClassVar[LedgerOutcome]
    LEDGER_OUTCOME_DECLINED: _ClassVar[LedgerOutcome]
    LEDGER_OUTCOME_FAILED: _ClassVar[LedgerOutcome]
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_PENDING: PaymentStatus
PAYMENT_STATUS_AUTHORIZED: PaymentStatus
PAYMENT_STATUS_DECLINED: PaymentStatus
PAYMENT_STATUS_CAPTURED: PaymentStatus
PAYMENT_STATUS_VOIDED: PaymentStatus
PAYMENT_STATUS_REFUNDED: PaymentStatus
LEDGER_OPERATION_UNSPECIFIED: LedgerOperation
LEDGER_OPERATION_AUTHORIZE: LedgerOperation
LEDGER_OPERATION_CAPTURE: LedgerOperation
LEDGER_OPERATION_VOID: LedgerOperation
LEDGER_OPERATION_REFUND: LedgerOperation
LEDGER_OUTCOME_UNSPECIFIED: LedgerOutcome
LEDGER_OUTCOME_SUCCEEDED: LedgerOutcome
LEDGER_OUTCOME_DECLINED: LedgerOutcome
LEDGER_OUTCOME_FAILED: LedgerOutcome

class Payment(_message.Message):
    __slots__ = ("id", "idempotency_key", "buyer_id", "amount_minor", "currency", "status", "provider_ref", "decline_reason", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REF_FIELD_NUMBER: _ClassVar[int]
    DECLINE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    idempotency_key: str
    buyer_id: str
    amount_minor: int
    currency: str
    status: PaymentStatus
    provider_ref: str
    decline_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., buyer_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., provider_ref: _Optional[str] = ..., decline_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuthorizePaymentRequest(_message.Message):
    __slots__ = ("idempotency_key", "buyer_id", "amount_minor", "currency", "payment_method", "reference")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    buyer_id: str
    amount_minor: int
    currency: str
    payment_method: str
    reference: str
    def __init__(self, idempotency_key: _Optional[str] = ..., buyer_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., payment_method: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class CapturePaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class VoidPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class RefundPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class GetPaymentRequest(_message.Message):
    __slots__ = ("payment_id", "idempotency_key")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    idempotency_key: str
    def __init__(self, payment_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("id", "payment_id", "operation", "outcome", "amount_minor", "provider_idempotency_key", "provider_ref", "detail", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REF_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    payment_id: str
    operation: LedgerOperation
    outcome: LedgerOutcome
    amount_minor: int
    provider_idempotency_key: str
    provider_ref: str
    detail: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., payment_id: _Optional[str] = ..., operation: _Optional[_Union[LedgerOperation, str]] = ..., outcome: _Optional[_Union[LedgerOutcome, str]] = ..., amount_minor: _Optional[int] = ..., provider_idempotency_key: _Optional[str] = ..., provider_ref: _Optional[str] = ..., detail: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListLedgerEntriesRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class ListLedgerEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ...) -> None: ...

class CheckPaymentMethodRequest(_message.Message):
    __slots__ = ("payment_method",)
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    payment_method: str
    def __init__(self, payment_method: _Optional[str] = ...) -> None: ...

class CheckPaymentMethodResponse(_message.Message):
    __slots__ = ("accepted", "problem")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    problem: str
    def __init__(self, accepted: _Optional[bool] = ..., problem: _Optional[str] = ...) -> None: ...
