"""Traces across every hop: OpenTelemetry spans exported to Zipkin.

Off unless AVIARY_TRACE_ENDPOINT names a Zipkin span intake: then no
interceptor, instrumentation or exporter is installed, and what the hot path
pays is a module flag read. On, every process records gRPC server and client
calls, Redis commands, SQLAlchemy statements, CQL statements and Kafka
publish/consume, for the share of new traces AVIARY_TRACE_SAMPLE_RATIO says;
a trace begun upstream (Envoy's sampled flag) keeps its decision.

Context travels as W3C `traceparent` (Envoy sends it beside B3), in gRPC
metadata and in Kafka record headers; the outbox fast path carries it from
the request that wrote an event to the relay that publishes it. `x-request-id`
(Envoy's) is logged on every line of the call and travels in Kafka headers
always, and to peers in gRPC metadata with tracing on; the trace id is logged
beside it with tracing on. A trace that is not sampled makes no span at all,
not even a store statement's; nor does a background job's own statement (an
epoch watch, an outbox poll), which would be a one-span trace of its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any, Iterator, Sequence

# The API only (light, no SDK): the hot paths must not import per call.
from opentelemetry import context as otel_context
from opentelemetry.context import _RUNTIME_CONTEXT, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"
# Kafka header values are bytes; gRPC metadata values are str.
KafkaHeaders = list[tuple[str, bytes]]

# The request id of what this task is doing: a gRPC call (Envoy's header) or
# a Kafka record (its header).
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("aviary_request_id", default=None)

_enabled = False
_tracer: Any = None
_propagator: Any = None


def enabled() -> bool:
    return _enabled


def setup(service: str) -> None:
    """Installs tracing for this process when the settings name an endpoint."""
    global _enabled, _tracer, _propagator
    from services.kit import settings

    knobs = settings.current()
    if not knobs.trace_endpoint or _enabled:
        return
    from opentelemetry import propagate
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(knobs.trace_sample_ratio)),
    )
    # Spans leave in batches from a thread of their own; a full queue drops
    # spans rather than slowing requests.
    provider.add_span_processor(BatchSpanProcessor(ZipkinExporter(endpoint=knobs.trace_endpoint, timeout=5)))
    trace.set_tracer_provider(provider)
    _propagator = TraceContextTextMapPropagator()
    propagate.set_global_textmap(_propagator)
    _tracer = trace.get_tracer("aviary.kit")
    RedisInstrumentor().instrument(tracer_provider=provider)
    _enabled = True
    while _engines:
        instrument_engine(_engines.pop())
    log.info("tracing on", extra={"endpoint": knobs.trace_endpoint, "sample_ratio": knobs.trace_sample_ratio})


def shutdown() -> None:
    """Sends the spans still queued (on the way out)."""
    if _enabled:
        provider = trace.get_tracer_provider()
        flush = getattr(provider, "shutdown", None)
        if flush is not None:
            flush()


# -- gRPC -----------------------------------------------------------------------

# Status codes that mean the server failed (OpenTelemetry's rule for server spans).
_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})


def _metadata_carrier(metadata: Sequence[tuple[str, Any]] | None) -> dict[str, str]:
    return {key: value for key, value in metadata or () if key in ("traceparent", "tracestate")}


def start_server_span(rpc_service: str, method: str, metadata: Sequence[tuple[str, Any]] | None) -> Any:
    """Opens the span of one served call as the current one, child of the
    caller's (from its traceparent); None when tracing is off or for health
    and reflection calls, which would bury the traces that matter."""
    if not _enabled or rpc_service.startswith("grpc."):
        return None
    parent = _propagator.extract(_metadata_carrier(metadata))
    if _unsampled(parent):
        return None, otel_context.attach(_unrecorded(parent))
    attributes = {"rpc.system": "grpc", "rpc.service": rpc_service, "rpc.method": method}
    span = _tracer.start_span(
        f"{rpc_service}/{method}", context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
    )
    return span, _attach_span(span, parent)


def _unrecorded(context: Any) -> Any:
    """`context` with the store spans off (the Redis and SQLAlchemy
    instrumentations and `cql_span`). Under a trace that is not recorded each
    statement would still make a span that goes nowhere: tens of
    microseconds a statement, on most calls."""
    return otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, context)


def _attach_span(span: Any, parent: Any) -> Any:
    """Makes `span`, a child of `parent`, the current span; with the store
    spans off when the sampler dropped it. Returns the token to detach."""
    current = trace.set_span_in_context(span, parent)
    return otel_context.attach(current if span.is_recording() else _unrecorded(current))


def without_store_spans() -> None:
    """For the rest of this task (a background job's: an epoch watch, an
    outbox poll, a flush), no store spans: each statement would start a
    trace of its own, one span long, at the sampling ratio. A Kafka record
    is applied in the context its headers give (`consuming`), not this one."""
    if _enabled:
        otel_context.attach(_unrecorded(otel_context.get_current()))


def _detach(token: Any) -> None:
    """Restores the context from before `attach`. A stream that a peer
    closed is finalized from another task's context, where there is nothing
    to restore (OpenTelemetry's own detach would log that as an error)."""
    try:
        _RUNTIME_CONTEXT.detach(token)
    except ValueError:
        pass


def _unsampled(context: Any = None) -> bool:
    """The context (the current one by default) belongs to a trace that is
    not recorded. Then no span is made at all: the sampler would only say
    no, and the context goes on as it came (the trace id still reaches the
    logs and the next hop). Most calls take this path, so it costs little."""
    span_context = trace.get_current_span(context).get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


def end_server_span(opened: Any, code: Any) -> None:
    """Ends what start_server_span opened, with the call's grpc.StatusCode."""
    if opened is None:
        return
    span, token = opened
    if span is not None:
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code.name in _SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()
    _detach(token)


def traced_channel(channel: Any) -> Any:
    """`channel` (a grpc.aio channel to a peer), such that every call on it
    has a client span, and carries its context and the request id in its
    metadata; the channel itself when tracing is off.

    The calls are wrapped where stubs make them, not with grpc.aio client
    interceptors: an intercepted call takes grpc.aio's slower path, which
    cost several times what the span does, for every call, sampled or not."""
    return _TracedChannel(channel) if _enabled else channel


class _TracedChannel:
    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _TracedCall(self._channel.unary_unary(method, *args, **kwargs), method)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _TracedCall(self._channel.unary_stream(method, *args, **kwargs), method)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _TracedCall(self._channel.stream_unary(method, *args, **kwargs), method)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _TracedCall(self._channel.stream_stream(method, *args, **kwargs), method)


class _TracedCall:
    """A stub's multi-callable that opens a client span per call; the call
    object is handed back untouched (streams keep read, write and cancel)."""

    def __init__(self, inner: Any, method: str) -> None:
        self._inner = inner
        self._name = method.lstrip("/")
        rpc_service, _, rpc_method = self._name.partition("/")
        self._attributes = {"rpc.system": "grpc", "rpc.service": rpc_service, "rpc.method": rpc_method}

    # A stream-stream method is called with no request: pass through what came.
    def __call__(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        carrier: dict[str, str] = {}
        if _unsampled():
            span = None
            _propagator.inject(carrier)
        else:
            span = _tracer.start_span(self._name, kind=trace.SpanKind.CLIENT, attributes=self._attributes)
            _propagator.inject(carrier, context=trace.set_span_in_context(span))
        pairs = [*(metadata or ()), *carrier.items()]
        rid = _request_id.get()
        if rid is not None:
            pairs.append((REQUEST_ID_HEADER, rid))
        call = self._inner(*args, metadata=tuple(pairs), **kwargs)
        if span is not None and span.is_recording():
            # Ended with the call's status once it is done; an unsampled span needs no end.
            call.add_done_callback(lambda done: _end_client_span(span, done))
        return call


def _end_client_span(span: Any, call: Any) -> None:
    import asyncio

    async def end() -> None:
        try:
            code = await call.code()
        except BaseException:
            code = None
        if code is not None:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code.name != "OK":
                span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()

    asyncio.ensure_future(end())


def bind_request(metadata: Sequence[tuple[str, Any]] | None) -> contextvars.Token | None:
    """Remembers the caller's x-request-id for this call's logs and onward calls."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            return _request_id.set(value)
    return None


def unbind_request(token: contextvars.Token | None) -> None:
    """Forgets the id bound by bind_request; like _detach, nothing to undo in
    another task's context (a stream the peer closed, finalized by asyncio)."""
    if token is None:
        return
    try:
        _request_id.reset(token)
    except ValueError:
        pass


def request_id() -> str | None:
    return _request_id.get()


def trace_id() -> str | None:
    """The current trace id (32 hex digits), sampled or not; None when tracing is off."""
    if not _enabled:
        return None
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


# -- stores -----------------------------------------------------------------------


# Engines made before setup() (servicers are built before the server starts).
_engines: list[Any] = []


def instrument_engine(engine: Any) -> None:
    """Spans for an SQLAlchemy (async) engine's statements, once tracing is on."""
    if _enabled:
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import get_meter

        # The engine's tracer itself, not SQLAlchemyInstrumentor: that one
        # instruments once per process (payments has two engines) and refuses
        # SQLAlchemy 2.1, whose engine events it uses unchanged. No meter
        # provider is set, so its connection gauge records nothing.
        usage = get_meter("aviary.kit").create_up_down_counter("db.client.connections.usage")
        EngineTracer(_tracer, engine.sync_engine, usage)
    else:
        _engines.append(engine)


def cql_span(statement: str) -> contextlib.AbstractContextManager:
    """A client span around one CQL statement (the driver's own threads finish it)."""
    if not _enabled or otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
        return contextlib.nullcontext()
    attributes = {"db.system": "cassandra", "db.statement": statement}
    name = "cql " + statement.split(" ", 1)[0]
    return _tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)


# -- Kafka ------------------------------------------------------------------------


def outgoing_headers() -> KafkaHeaders:
    """Headers for an event written now: the request id, and the trace
    context when tracing is on, so the consumer's span joins this trace."""
    headers: KafkaHeaders = []
    rid = _request_id.get()
    if rid is not None:
        headers.append((REQUEST_ID_HEADER, rid.encode()))
    if _enabled:
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        headers.extend((key, value.encode()) for key, value in carrier.items())
    return headers


def _carrier(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    return {key: value.decode("latin-1") for key, value in headers or () if isinstance(value, bytes)}


def start_publish(topic: str, headers: Sequence[tuple[str, bytes]]) -> tuple[Any, KafkaHeaders]:
    """A producer span for one record, child of the context in its headers
    (ended by `end_publish` once Kafka acknowledged it), and the headers to
    send, which carry this span as the consumer's parent."""
    if not _enabled:
        return None, list(headers)
    carrier = _carrier(headers)
    parent = _propagator.extract(carrier)
    if _unsampled(parent):
        return None, list(headers)
    attributes = {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation": "publish"}
    span = _tracer.start_span(f"{topic} publish", context=parent, kind=trace.SpanKind.PRODUCER, attributes=attributes)
    carrier.pop(TRACEPARENT_HEADER, None)
    carrier.pop("tracestate", None)
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return span, [(key, value.encode()) for key, value in carrier.items()]


def end_publish(span: Any, error: BaseException | None = None) -> None:
    if span is not None:
        if error is not None:
            span.record_exception(error)
        span.end()


@contextlib.contextmanager
def consuming(group: str, topic: str, headers: Sequence[tuple[str, bytes]] | None) -> Iterator[None]:
    """The context a record is applied in: its request id, and (tracing on) a
    consumer span that is a child of the producer's."""
    carrier = _carrier(headers)
    token = _request_id.set(carrier[REQUEST_ID_HEADER]) if REQUEST_ID_HEADER in carrier else None
    try:
        if not _enabled:
            yield
            return
        # From the headers alone: nothing of the context the record is read in.
        parent = _propagator.extract(carrier, context=otel_context.Context())
        if _unsampled(parent):
            token_context = otel_context.attach(_unrecorded(parent))
            try:
                yield
            finally:
                _detach(token_context)
            return
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": group,
            "messaging.operation": "process",
        }
        span = _tracer.start_span(
            f"{topic} process", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
        )
        # The record's context and its span: nothing of the reading task's.
        token_context = _attach_span(span, parent)
        try:
            yield
        except BaseException as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()
            _detach(token_context)
    finally:
        unbind_request(token)
