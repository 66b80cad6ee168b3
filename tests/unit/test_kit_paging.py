"""Page tokens: opaque, authenticated by the server, cursors range-checked."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from services.kit import settings
from services.kit.server import paging
from services.kit.server.errors import ApiError


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _refused(token: str) -> ApiError:
    with pytest.raises(ApiError) as err:
        paging.int_cursor(token, "before")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("page_token: ")
    return err.value


def test_a_token_round_trips():
    token = paging.encode_token({"before": 123456789})
    assert paging.int_cursor(token, "before") == 123456789
    assert paging.decode_token(token) == {"v": 2, "before": 123456789}
    assert paging.decode_token("") is None and paging.int_cursor("", "before") is None


def test_the_largest_64_bit_cursor_is_accepted():
    token = paging.encode_token({"before": 2**63 - 1})
    assert paging.int_cursor(token, "before") == 2**63 - 1


@pytest.mark.parametrize("value", [2**63, 2**64 + 5, -1, "5", 1.5, True, None])
def test_a_signed_cursor_out_of_range_or_not_an_integer_is_refused(value):
    _refused(paging.encode_token({"before": value}))


def test_a_token_the_server_did_not_sign_is_refused():
    # The old format: plain base64url JSON, as a client could write it.
    _refused(_b64(json.dumps({"v": 1, "before": 5}).encode()))
    _refused(_b64(json.dumps({"v": 2, "before": 5}).encode()))


def test_changing_any_byte_of_a_token_is_refused():
    raw = _unb64(paging.encode_token({"before": 1000}))
    for position in range(len(raw)):
        altered = bytearray(raw)
        altered[position] ^= 0x01
        _refused(_b64(bytes(altered)))


def test_a_cursor_moved_under_the_old_tag_is_refused():
    raw = _unb64(paging.encode_token({"before": 1000}))
    tag = raw[:16]
    _refused(_b64(tag + b'{"v":2,"before":9999}'))


@pytest.mark.parametrize("token", ["garbage!", "not a token", "é", "%FF", "A", "x" * 600])
def test_garbage_is_refused(token):
    _refused(token)


def test_another_secret_makes_tokens_invalid(monkeypatch):
    token = paging.encode_token({"before": 7})
    monkeypatch.setenv("AVIARY_PAGE_TOKEN_SECRET", "another secret")
    settings.current.cache_clear()
    paging._secret.cache_clear()
    try:
        _refused(token)
        assert paging.int_cursor(paging.encode_token({"before": 7}), "before") == 7
    finally:
        monkeypatch.delenv("AVIARY_PAGE_TOKEN_SECRET")
        settings.current.cache_clear()
        paging._secret.cache_clear()
    assert paging.int_cursor(token, "before") == 7


def test_cursor_int_checks_its_own_bounds():
    cursor = paging.decode_token(paging.encode_token({"feed": 5, "offset": 0}))
    assert paging.cursor_int(cursor, "feed", minimum=1) == 5
    with pytest.raises(ApiError, match="page_token"):
        paging.cursor_int(cursor, "offset", minimum=1)
    with pytest.raises(ApiError, match="page_token"):
        paging.cursor_int(cursor, "missing")
