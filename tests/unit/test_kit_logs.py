"""What the kit's structured logs say about an error."""

from __future__ import annotations

import redis.exceptions

from services.kit.server.logs import error_text


def test_an_errors_text_names_its_type_and_says_why():
    refused = redis.exceptions.ConnectionError("No connection available.")
    # redis-py's repr leaves the reason out; the log line must not.
    assert "No connection available" not in repr(refused)
    assert error_text(refused) == "ConnectionError: No connection available."
    assert error_text(TimeoutError()) == "TimeoutError: "


def test_an_errors_text_is_bounded():
    assert len(error_text(ValueError("x" * 2000))) == 500
