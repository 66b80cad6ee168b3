"""The kit's tracing (services/kit/tracing.py): off, it installs nothing and
still carries the request id; on, a Kafka consumer's span is the child of the
publish span, which is the child of the request that wrote the event."""

from __future__ import annotations

import asyncio
import contextvars

import grpc
import pytest
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.kit import tracing
from services.kit.server import service


def test_off_installs_nothing_but_carries_the_request_id():
    assert not tracing.enabled()
    channel = object()
    assert tracing.traced_channel(channel) is channel
    assert tracing.start_server_span("aviary.posts.v1.PostsService", "CreatePost", ()) is None
    assert tracing.trace_id() is None
    token = tracing.bind_request((("authorization", "Bearer x"), ("x-request-id", "rid-1")))
    try:
        headers = tracing.outgoing_headers()
        assert headers == [("x-request-id", b"rid-1")]
        assert tracing.start_publish("posts.events.v1", headers) == (None, headers)
    finally:
        tracing.unbind_request(token)
    assert tracing.request_id() is None
    with tracing.consuming("fanout", "posts.events.v1", [("x-request-id", b"rid-1")]):
        assert tracing.request_id() == "rid-1"
    assert tracing.request_id() is None


def test_a_request_id_bound_in_another_context_is_left_alone():
    # What asyncio does to a stream the peer closed: its generator is
    # finalized in a task of its own, where the id was never bound.
    token = contextvars.copy_context().run(tracing.bind_request, (("x-request-id", "rid-2"),))
    tracing.unbind_request(token)
    assert tracing.request_id() is None


@pytest.fixture
def spans(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_enabled", True)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "_propagator", TraceContextTextMapPropagator())
    return exporter


def test_on_a_consumer_span_is_the_child_of_the_publish_span_of_the_request(spans):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    served = tracing.start_server_span("aviary.posts.v1.PostsService", "CreatePost", (("traceparent", traceparent),))
    headers = tracing.outgoing_headers()
    assert tracing.trace_id() == "0af7651916cd43dd8448eb211c80319c"
    tracing.end_server_span(served, grpc.StatusCode.OK)

    span, sent = tracing.start_publish("posts.events.v1", headers)
    tracing.end_publish(span)
    with tracing.consuming("fanout", "posts.events.v1", sent):
        assert tracing.trace_id() == "0af7651916cd43dd8448eb211c80319c"

    by_name = {s.name: s for s in spans.get_finished_spans()}
    server = by_name["aviary.posts.v1.PostsService/CreatePost"]
    publish, process = by_name["posts.events.v1 publish"], by_name["posts.events.v1 process"]
    assert server.parent.span_id == 0xB7AD6B7169203331
    assert publish.parent.span_id == server.context.span_id
    assert process.parent.span_id == publish.context.span_id
    assert {s.context.trace_id for s in (server, publish, process)} == {0x0AF7651916CD43DD8448EB211C80319C}


def test_health_checks_get_no_span(spans):
    assert tracing.start_server_span("grpc.health.v1.Health", "Check", ()) is None


def test_an_unsampled_trace_makes_no_span_but_keeps_its_id(spans):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    served = tracing.start_server_span("aviary.posts.v1.PostsService", "CreatePost", (("traceparent", traceparent),))
    assert tracing.trace_id() == "0af7651916cd43dd8448eb211c80319c"
    headers = tracing.outgoing_headers()
    tracing.end_server_span(served, grpc.StatusCode.OK)
    span, sent = tracing.start_publish("posts.events.v1", headers)
    assert span is None and sent == headers
    with tracing.consuming("fanout", "posts.events.v1", sent):
        assert tracing.trace_id() == "0af7651916cd43dd8448eb211c80319c"
    assert tracing.trace_id() is None
    assert spans.get_finished_spans() == ()


def test_store_spans_are_made_only_under_a_recorded_trace(spans):
    # The Redis and SQLAlchemy instrumentations skip a statement when
    # is_instrumentation_enabled() says no; cql_span is the kit's own.
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    served = tracing.start_server_span("aviary.posts.v1.PostsService", "CreatePost", (("traceparent", unsampled),))
    assert not is_instrumentation_enabled()
    with tracing.cql_span("SELECT 1 FROM unsampled"):
        pass
    tracing.end_server_span(served, grpc.StatusCode.OK)
    assert is_instrumentation_enabled()
    with tracing.consuming("fanout", "posts.events.v1", [("traceparent", unsampled.encode())]):
        assert not is_instrumentation_enabled()
    assert is_instrumentation_enabled()

    sampled = unsampled[:-2] + "01"
    served = tracing.start_server_span("aviary.posts.v1.PostsService", "CreatePost", (("traceparent", sampled),))
    assert is_instrumentation_enabled()
    with tracing.cql_span("SELECT 1 FROM sampled"):
        pass
    tracing.end_server_span(served, grpc.StatusCode.OK)
    names = [s.name for s in spans.get_finished_spans()]
    assert names == ["cql SELECT", "aviary.posts.v1.PostsService/CreatePost"]
    assert spans.get_finished_spans()[0].attributes["db.statement"] == "SELECT 1 FROM sampled"


def test_a_root_span_the_sampler_drops_turns_store_spans_off(monkeypatch, spans):
    provider = TracerProvider(sampler=ALWAYS_OFF)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    served = tracing.start_server_span("aviary.posts.v1.PostsService", "CreatePost", ())
    assert not is_instrumentation_enabled()
    tracing.end_server_span(served, grpc.StatusCode.OK)
    assert is_instrumentation_enabled()
    with tracing.consuming("fanout", "posts.events.v1", []):  # a record without trace headers
        assert not is_instrumentation_enabled()
    assert is_instrumentation_enabled()


async def test_a_background_jobs_statements_make_no_spans_but_a_sampled_record_it_reads_does(spans):
    seen = []
    sampled = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]

    async def job():
        seen.append(is_instrumentation_enabled())  # an outbox poll's own statements
        with tracing.consuming("fanout", "posts.events.v1", sampled):
            seen.append(is_instrumentation_enabled())
        seen.append(is_instrumentation_enabled())

    await asyncio.create_task(service._supervise(job, "test"))
    assert seen == [False, True, False]
    assert [s.name for s in spans.get_finished_spans()] == ["posts.events.v1 process"]
    assert is_instrumentation_enabled(), "only the job's own task"


def test_a_traced_peer_call_passes_on_what_it_was_called_with(spans):
    """Stream-stream methods are called with no request at all (engagement's StreamEngagement)."""
    seen = []

    class Call:
        def add_done_callback(self, callback):
            seen.append("callback")

    def method(*args, **kwargs):
        seen.append((args, kwargs))
        return Call()

    channel = tracing.traced_channel(type("Channel", (), {"stream_stream": lambda self, name, **kw: method})())
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    served = tracing.start_server_span("aviary.feed.v1.FeedService", "GetFeed", (("traceparent", traceparent),))
    channel.stream_stream("/aviary.engagement.v1.EngagementService/StreamEngagement")(timeout=5)
    tracing.end_server_span(served, grpc.StatusCode.OK)
    (args, kwargs), callback = seen
    assert args == () and kwargs["timeout"] == 5 and callback == "callback"
    sent = dict(kwargs["metadata"])
    assert sent["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
