"""gRPC server bootstrap shared by every service.

Each service gets: grpc.health.v1 (NOT_SERVING until its startup hooks finish),
server reflection, a Prometheus endpoint at port+1000, per-RPC latency
metrics, ApiError -> gRPC status mapping, and graceful shutdown on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

from services.kit import manifest, mesh, settings, tracing
from services.kit.server import requests
from services.kit.server.errors import BACKEND_UNAVAILABLE, ApiError, rich_status, unavailable, unreachable_backend
from services.kit.server.logs import error_text, setup_logging

log = logging.getLogger(__name__)

RPC_LATENCY = Histogram(
    "aviary_rpc_server_seconds",
    "Server-side RPC latency",
    ["service", "method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPC_ERRORS = Counter("aviary_rpc_server_errors_total", "RPCs that ended non-OK", ["service", "method", "code"])
# The same latency under OpenTelemetry's semantic name (rpc.server.duration,
# milliseconds) and attributes, as its Prometheus exporter would name them, so
# dashboards and alerts written against the conventions work unchanged.
RPC_SERVER_DURATION = Histogram(
    "rpc_server_duration_milliseconds",
    "Measures the duration of inbound RPC (OpenTelemetry rpc.server.duration)",
    ["rpc_system", "rpc_service", "rpc_method", "rpc_grpc_status_code"],
    buckets=(1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
# Every collection stops the process's event loop: pauses show in tail latency.
GC_PAUSES = Histogram(
    "aviary_gc_pause_seconds",
    "Python garbage collections by generation, and how long each stopped the process",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

Hook = Callable[[], Awaitable[Any]]


@dataclass
class Service:
    """What one process serves and the hooks around its lifetime."""

    name: str
    port: int
    # (add_XServicer_to_server, servicer instance, full service name) triples.
    servicers: list[tuple[Callable, Any, str]] = field(default_factory=list)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    # Long-running coroutines (consumers, relays) started after on_start.
    background: list[Hook] = field(default_factory=list)
    # Largest request message accepted; raise it for services that take
    # whole files (media uploads).
    max_receive_message_bytes: int = 16 * 1024 * 1024


class KitInterceptor(grpc.aio.ServerInterceptor):
    """Refuses malformed requests before the servicer runs (services/kit/server/requests.py),
    maps ApiError to status with its details, and records latency for every RPC shape."""

    def __init__(self, service: str, *, mesh_tls: bool = False) -> None:
        self.service = service
        # Callers are checked against the mesh's allow-list (services/kit/mesh.py).
        self.mesh_tls = mesh_tls
        # Wrapped handlers by full method name: gRPC asks for a handler on
        # every call, and building one each time is measurable per request.
        self._wrapped: dict[str, Any] = {}
        # False until the start-up hooks have run: a servicer may need what
        # they open, so its calls are refused as UNAVAILABLE until then.
        self.ready = False
        # Method name -> full gRPC service name (the OpenTelemetry rpc.service).
        self._rpc_services: dict[str, str] = {}

    async def intercept_service(self, continuation, handler_call_details):
        full_method = handler_call_details.method
        wrapped = self._wrapped.get(full_method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            # Health and reflection answer while the service is starting.
            gated = not full_method.startswith("/grpc.")
            wrapped = self._wrap(handler, full_method, gated)
            self._wrapped[full_method] = wrapped
        return wrapped

    def _wrap(self, handler, full_method: str, gated: bool):
        rpc_service, method = full_method.lstrip("/").rsplit("/", 1)
        self._rpc_services[method] = rpc_service
        # Bytes that do not parse reach the handler as requests.Unparsable.
        deserialize = requests.tolerant(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, full_method, streamed=False, gated=gated),
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, full_method, streamed=True, gated=gated),
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, full_method, streamed=False, gated=gated),
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(handler.stream_stream, full_method, streamed=True, gated=gated),
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )

    def _checked(self, request, context, full_method: str, streamed: bool, gated: bool):
        """The request (or request stream) the servicer gets, refused here
        when the caller may not call the method (the mesh's allow-list) or
        the request is malformed: a stream is checked message by message as
        it is read."""
        if self.mesh_tls:
            caller = mesh.peer_identity(context)
            denied = mesh.refusal(full_method, caller)
            if denied is not None:
                log.warning("the mesh refused a caller", extra={"method": full_method, "caller": caller})
                raise denied
        if gated and not self.ready:
            raise unavailable(f"{self.service} is starting; try again shortly")
        method = _short(full_method)
        if streamed:
            return _CheckedRequests(request, method)
        refused = requests.refusal(request)
        if refused is not None:
            _log_refusal(method, refused)
            raise refused
        return request

    def _wrap_unary(self, inner, full_method: str, streamed: bool, gated: bool):
        method = _short(full_method)

        async def call(request, context):
            async with self._answering(method, context):
                checked = self._checked(request, context, full_method, streamed, gated)
                try:
                    answer = await inner(checked, context)
                except Exception:
                    _raise_refusal(checked)
                    raise
                _raise_refusal(checked)
                return answer

        return call

    def _wrap_stream(self, inner, full_method: str, streamed: bool, gated: bool):
        method = _short(full_method)

        async def call(request, context):
            async with self._answering(method, context):
                checked = self._checked(request, context, full_method, streamed, gated)
                try:
                    async for item in inner(checked, context):
                        yield item
                except Exception:
                    _raise_refusal(checked)
                    raise
                _raise_refusal(checked)

        return call

    @contextlib.asynccontextmanager
    async def _answering(self, method: str, context) -> AsyncIterator[None]:
        """Turns what a call raises into its status, and records the call's latency and outcome."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        metadata = context.invocation_metadata()
        request = tracing.bind_request(metadata)
        span = tracing.start_server_span(self._rpc_services.get(method, self.service), method, metadata)
        try:
            yield
        except ApiError as err:
            code = err.code
            await _abort(context, err.code, err.message, err.details)
        except grpc.aio.AbortError:
            code = _aborted_code(context)
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code, message = _unhandled(method, exc)
            await _abort(context, code, message)
        finally:
            tracing.end_server_span(span, code)
            tracing.unbind_request(request)
            self._observe(method, code, started)

    def _observe(self, method: str, code: grpc.StatusCode, started: float) -> None:
        seconds = time.perf_counter() - started
        RPC_LATENCY.labels(self.service, method, code.name).observe(seconds)
        rpc_service = self._rpc_services.get(method, self.service)
        RPC_SERVER_DURATION.labels("grpc", rpc_service, method, str(code.value[0])).observe(seconds * 1000)
        if code != grpc.StatusCode.OK:
            RPC_ERRORS.labels(self.service, method, code.name).inc()


def _short(full_method: str) -> str:
    return full_method.rsplit("/", 1)[1]


class _CheckedRequests:
    """A request stream checked message by message as it is read. A malformed
    message is raised to the reader, and the call ends with it once the
    servicer returns, so the status goes out from the call's own task (a
    servicer that reads in a task of its own must end when that read fails)."""

    def __init__(self, request_stream, method: str) -> None:
        self._stream = request_stream
        self._method = method
        self.refused: ApiError | None = None

    async def __aiter__(self):
        async for request in self._stream:
            refused = requests.refusal(request)
            if refused is not None:
                _log_refusal(self._method, refused)
                self.refused = refused
                raise refused
            yield request


def _raise_refusal(checked) -> None:
    """The call's answer is the malformed message its servicer read, whatever the servicer made of it."""
    if isinstance(checked, _CheckedRequests) and checked.refused is not None:
        raise checked.refused


def _log_refusal(method: str, refused: ApiError) -> None:
    log.info("refused a malformed request", extra={"method": method, "problem": refused.message[:300]})


async def _abort(context, code: grpc.StatusCode, message: str, details=()) -> None:
    await context.abort_with_status(rich_status(code, message, details))


def status_for(method: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status a call of `method` that raised `exc` is answered with, for
    handlers that answer failures as data (one failed batch on a stream)."""
    if isinstance(exc, ApiError):
        return exc.code, exc.message
    return _unhandled(method, exc)


def _unhandled(method: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
    """How to answer an exception no servicer handled: UNAVAILABLE when a
    backend or peer could not be reached (retry later), otherwise INTERNAL
    (a bug, logged in full)."""
    backend = unreachable_backend(exc)
    if backend is not None:
        log.warning("%s unavailable in %s", backend, method, extra={"error": error_text(exc)})
        return grpc.StatusCode.UNAVAILABLE, BACKEND_UNAVAILABLE
    log.exception("unhandled error in %s", method)
    return grpc.StatusCode.INTERNAL, "internal error; it has been logged"


def _aborted_code(context) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


async def _serve(service: Service) -> None:
    log = setup_logging(service.name)
    tracing.setup(service.name)
    mesh_tls = settings.current().mesh_tls
    mesh.set_identity(service.name)
    if mesh_tls:
        mesh.rules()  # a manifest that does not match the protos stops the start
    interceptor = KitInterceptor(service.name, mesh_tls=mesh_tls)
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", service.max_receive_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.http2.max_pings_without_data", 0),
            # Peers ping every 30 s (kit/peers/clients.py), also on streams
            # that idle for minutes (StreamEngagement): gRPC's default wants
            # 5 minutes between pings without data and ends the connection
            # ("too_many_pings") after two closer ones.
            ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    for add, servicer, full_name in service.servicers:
        add(servicer, server)
        names.append(full_name)
    reflection.enable_server_reflection(names, server)
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    _listen(server, service, mesh_tls)
    metrics_port = settings.current().metrics_port or service.port + manifest.METRICS_OFFSET
    start_http_server(metrics_port, addr="127.0.0.1" if _loopback_only() else "0.0.0.0")
    await server.start()
    log.info("listening", extra={"port": service.port, "metrics_port": metrics_port})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    for hook in service.on_start:
        await hook()
    tasks = [
        asyncio.create_task(_supervise(job, service.name), name=getattr(job, "__name__", "job"))
        for job in service.background
    ]
    _tune_gc()
    interceptor.ready = True
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving")

    await stop.wait()
    log.info("shutting down")
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(grace=5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for hook in service.on_stop:
        try:
            await hook()
        except Exception:
            log.exception("error in shutdown hook")
    tracing.shutdown()
    log.info("stopped")


def _listen(server: grpc.aio.Server, service: Service, mesh_tls: bool) -> None:
    """The gRPC port: over mutual TLS in the mesh, with health alone also in
    plaintext on the health port (for probes without a certificate)."""
    host = "127.0.0.1" if _loopback_only() else "[::]"
    if not mesh_tls:
        server.add_insecure_port(f"{host}:{service.port}")
        return
    server.add_secure_port(f"{host}:{service.port}", mesh.server_credentials(service.name))
    server.add_insecure_port(f"{host}:{settings.current().health_port or mesh.health_port(service.port)}")


async def _supervise(job: Hook, service: str) -> None:
    """Runs a background job forever, restarting it after a crash."""
    tracing.without_store_spans()
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logging.getLogger(service).exception("background job crashed; restarting in 1s")
            await asyncio.sleep(1)


def _tune_gc() -> None:
    """Cheaper collections: the objects alive after start-up (modules, stubs,
    prepared statements) are frozen out of every later collection, and the
    young generation is collected every 10,000 allocations (Python's default
    is 700). A larger young generation costs more per collection than its
    size alone would say (bench/README), so fewer, bigger collections made
    longer pauses, and more GC CPU in all."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(settings.current().gc_gen0_threshold, 20, 20)
    gc.callbacks.append(_gc_timer())


def _gc_timer() -> Callable[[str, dict], None]:
    """A gc callback observing each collection's pause in GC_PAUSES."""
    by_generation = [GC_PAUSES.labels(str(generation)) for generation in range(3)]
    started = 0.0

    def on_gc(phase: str, info: dict) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            by_generation[info["generation"]].observe(time.perf_counter() - started)

    return on_gc


def _loopback_only() -> bool:
    return not settings.current().bind_all


def run(service: Service) -> None:
    """Entry point for `python -m services.<name>`."""
    # `kill -USR1 <pid>` writes every thread's stack to stderr (the service's
    # log): how a stuck thread (a consumer's poller, say) is found in place.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if settings.current().uvloop:
        # libuv's loop costs a fraction of the default one per I/O event.
        import uvloop

        uvloop.run(_serve(service))
    else:
        asyncio.run(_serve(service))
