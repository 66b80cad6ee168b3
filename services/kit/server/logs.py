"""Structured (one JSON object per line) logging."""

from __future__ import annotations

import json
import logging
import sys
import time

from services.kit import settings, tracing

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = tracing.request_id()
        if request_id is not None:
            doc["request_id"] = request_id
        trace_id = tracing.trace_id()
        if trace_id is not None:
            doc["trace_id"] = trace_id
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def error_text(exc: BaseException) -> str:
    """An exception as a log line shows it: its type and message. Not repr():
    redis-py's errors repr as their category and class alone
    ("network:ConnectionError"), without saying why."""
    return f"{type(exc).__name__}: {exc}"[:500]


def setup_logging(service: str) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.current().log_level.upper())
    # The Cassandra and Kafka drivers are chatty at INFO.
    for noisy in ("cassandra", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(service)
