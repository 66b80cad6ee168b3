"""Upload rules: allowed types, size limits per kind, and content sniffing."""

from __future__ import annotations

import grpc
import pytest

from services.kit.server.errors import ApiError
from services.kit.settings import load
from services.media import validation
from services.media.settings import MediaSettings
from services.media.validation import MiB, Limits, check_upload, normalize_content_type, sniff
from tests import media_files

LIMITS = Limits(image_bytes=5 * MiB, video_bytes=15 * MiB)


def _bad(declared: str, data: bytes, limits: Limits = LIMITS) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_upload(declared, data, limits)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


@pytest.mark.parametrize("content_type", sorted(media_files.SAMPLES))
def test_every_allowed_type_is_recognized_and_accepted(content_type):
    data = media_files.SAMPLES[content_type]()
    assert sniff(data) == content_type
    assert check_upload(content_type, data, LIMITS) == content_type


def test_every_allowed_type_has_an_extension():
    assert set(validation.EXTENSIONS) == set(validation.ALLOWED_TYPES)


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("image/png", "image/png"),
        ("IMAGE/PNG", "image/png"),
        ("image/png; charset=binary", "image/png"),
        ("  video/mp4 ", "video/mp4"),
        ("image/jpg", "image/jpeg"),
        ("image/pjpeg", "image/jpeg"),
        ("", ""),
    ],
)
def test_declared_types_are_normalized(raw, canonical):
    assert normalize_content_type(raw) == canonical


def test_declared_type_with_parameters_is_accepted():
    assert check_upload("Image/PNG; foo=bar", media_files.png(), LIMITS) == "image/png"
    assert check_upload("image/jpg", media_files.jpeg(), LIMITS) == "image/jpeg"


@pytest.mark.parametrize(
    "declared",
    [
        "text/plain",
        "application/octet-stream",
        "image/svg+xml",
        "image/tiff",
        "video/quicktime",
        "application/x-www-form-urlencoded",
        "text/html",
    ],
)
def test_types_outside_the_list_are_refused_naming_the_field(declared):
    err = _bad(declared, media_files.png())
    assert err.message.startswith("file.content_type:")
    assert declared in err.message
    assert "image/png" in err.message  # says what is allowed


def test_a_missing_content_type_is_refused():
    err = _bad("", media_files.png())
    assert err.message.startswith("file.content_type:") and "required" in err.message


def test_an_empty_file_is_refused():
    err = _bad("image/png", b"")
    assert err.message.startswith("file:") and "empty" in err.message


@pytest.mark.parametrize(
    "declared, data, says",
    [
        ("image/jpeg", media_files.png(), "looks like image/png"),
        ("image/png", media_files.jpeg(), "looks like image/jpeg"),
        ("image/png", b"hello, I am text, not a picture\n", "not a recognizable"),
        ("image/gif", b"GIF90a" + b"\x00" * 20, "not a recognizable"),
        ("video/mp4", media_files.webm(), "looks like video/webm"),
        ("video/webm", media_files.mp4(), "looks like video/mp4"),
        ("image/webp", b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\x00" * 8, "not a recognizable"),
        ("image/png", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a recognizable"),
    ],
    ids=[
        "png-as-jpeg",
        "jpeg-as-png",
        "text-as-png",
        "bad-gif-version",
        "webm-as-mp4",
        "mp4-as-webm",
        "wav-as-webp",
        "svg-as-png",
    ],
)
def test_content_must_match_the_declared_type(declared, data, says):
    err = _bad(declared, data)
    assert err.message.startswith("file:")
    assert f"declared as {declared}" in err.message
    assert says in err.message


def test_a_heic_photo_is_not_an_mp4_video():
    heic = media_files.mp4(brand=b"heic")
    assert sniff(heic) is None
    _bad("video/mp4", heic)


def test_a_matroska_file_is_not_webm():
    mkv = media_files.webm(doctype=b"matroska")
    assert sniff(mkv) is None
    _bad("video/webm", mkv)


def test_truncated_headers_are_not_recognized():
    for data in (b"\x89PN", b"\xff\xd8", b"GIF8", b"RIFF\x00\x00", b"\x00\x00\x00\x18ftyp", b"\x1a\x45\xdf"):
        assert sniff(data) is None


def test_images_are_limited_to_the_image_limit_naming_it():
    limits = Limits(image_bytes=1000, video_bytes=5000)
    assert check_upload("image/png", media_files.png(size=1000), limits) == "image/png"
    err = _bad("image/png", media_files.png(size=1001), limits)
    assert err.message.startswith("file:")
    assert "1001 bytes" in err.message and "images may be at most" in err.message and "1000 bytes" in err.message


def test_videos_have_their_own_larger_limit():
    limits = Limits(image_bytes=1000, video_bytes=5000)
    assert check_upload("video/mp4", media_files.mp4(size=5000), limits) == "video/mp4"
    err = _bad("video/mp4", media_files.mp4(size=5001), limits)
    assert "videos may be at most" in err.message and "5000 bytes" in err.message


def test_default_limits_are_5_and_15_mib_and_the_size_check_comes_before_sniffing():
    err = _bad("image/png", b"x" * (5 * MiB + 1))  # oversized and not a PNG: the size is what is reported
    assert "5 MiB" in err.message
    assert check_upload("image/png", media_files.png(size=5 * MiB), LIMITS) == "image/png"
    assert check_upload("video/mp4", media_files.mp4(size=15 * MiB), LIMITS) == "video/mp4"
    err = _bad("video/mp4", media_files.mp4(size=15 * MiB + 1))
    assert "15 MiB" in err.message


def test_limits_come_from_the_settings():
    assert Limits.from_settings(load(MediaSettings, {})) == Limits(image_bytes=5 * MiB, video_bytes=15 * MiB)
    settings = load(MediaSettings, {"AVIARY_MEDIA_MAX_IMAGE_BYTES": "2048", "AVIARY_MEDIA_MAX_VIDEO_BYTES": "4096"})
    limits = Limits.from_settings(settings)
    assert (limits.image_bytes, limits.video_bytes, limits.largest) == (2048, 4096, 4096)
    assert limits.for_type("image/gif") == 2048 and limits.for_type("video/webm") == 4096


@pytest.mark.parametrize(
    "size, text",
    [(10, "10 bytes"), (2048, "2 KiB"), (1536, "1.5 KiB"), (5 * MiB, "5 MiB"), (int(5.7 * MiB), "5.7 MiB")],
)
def test_sizes_read_like_a_person_would_write_them(size, text):
    assert validation.human_size(size) == text


def test_alt_text_is_trimmed_and_keeps_line_breaks_and_tabs():
    assert validation.check_alt_text("  A heron\r\non one leg\t(grey)  ") == "A heron\non one leg\t(grey)"
    assert validation.check_alt_text("") == ""


def test_alt_text_counts_characters_not_bytes():
    assert validation.check_alt_text("é" * validation.MAX_ALT_TEXT) == "é" * validation.MAX_ALT_TEXT
    with pytest.raises(ApiError) as caught:
        validation.check_alt_text("é" * (validation.MAX_ALT_TEXT + 1))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "alt_text" in str(caught.value) and "1000" in str(caught.value)


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x9b"])
def test_alt_text_refuses_control_characters(control):
    with pytest.raises(ApiError) as caught:
        validation.check_alt_text(f"a{control}b")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "alt_text" in str(caught.value)
