"""Uploads parsed in full and stored without metadata: images (Pillow) and videos (ffprobe, ffmpeg)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import tempfile

import grpc
import pytest
from PIL import Image, ImageCms, ImageSequence

from services.kit.server.errors import ApiError
from services.kit.settings import load
from services.media import images, videos
from services.media.images import PixelLimits
from services.media.settings import MediaSettings
from services.media.validation import Limits
from tests import media_files

PIXELS = Limits().pixels
TOOLS = videos.Tools.from_settings(load(MediaSettings))
GPS_IFD = 0x8825


def _refused(call, *args) -> str:
    with pytest.raises(ApiError) as caught:
        result = call(*args)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("file: ")
    return caught.value.message


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _assert_no_metadata(data: bytes) -> None:
    image = _open(data)
    assert dict(image.getexif()) == {} and image.getexif().get_ifd(GPS_IFD) == {}
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment"} & set(image.info)
    assert media_files.SECRET_TEXT.encode() not in data


# -- images --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_a_photo_loses_its_gps_exif_xmp_and_comment_and_keeps_its_pixels(fmt, content_type):
    upload = media_files.photo(fmt)
    original = _open(upload)
    assert original.getexif().get_ifd(GPS_IFD)  # the test photo does carry a position
    assert media_files.SECRET_TEXT.encode() in upload

    stored = images.clean(content_type, upload, PIXELS)

    _assert_no_metadata(stored)
    kept = _open(stored)
    assert (kept.format, kept.size, kept.mode) == (original.format, original.size, original.mode)
    assert kept.tobytes() == original.tobytes()  # stripped losslessly, not re-encoded


def test_a_jpeg_keeps_its_colour_profile_and_loses_what_follows_its_end():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(out, "JPEG", icc_profile=profile)
    upload = out.getvalue() + media_files.photo("JPEG")  # a second picture (with GPS) after the end, as MPF does
    stored = images.clean("image/jpeg", upload, PIXELS)
    assert _open(stored).info["icc_profile"] == profile
    assert stored == out.getvalue()  # the first picture, nothing after it
    assert media_files.SECRET_TEXT.encode() not in stored


@pytest.mark.parametrize("fmt, content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_a_rotated_photo_is_stored_upright_without_metadata(fmt, content_type):
    # Orientation 6: the camera was turned, the picture must be turned 90 degrees clockwise to show.
    stored = images.clean(content_type, media_files.photo(fmt, width=48, height=32, orientation=6), PIXELS)
    _assert_no_metadata(stored)
    upright = _open(stored).convert("RGB")
    assert upright.size == (32, 48)
    top, bottom = upright.getpixel((16, 4)), upright.getpixel((16, 43))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def _animation(fmt: str, **extra) -> bytes:
    frames = [Image.new("RGB", (20, 20), (60 * i, 0, 255 - 60 * i)) for i in range(4)]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=[100, 200, 300, 400], loop=0, **extra)
    return out.getvalue()


@pytest.mark.parametrize(
    "fmt, content_type, extra",
    [
        ("GIF", "image/gif", {"comment": media_files.SECRET_TEXT.encode()}),
        ("WEBP", "image/webp", {"exif": Image.Exif(), "xmp": media_files.SECRET_TEXT.encode()}),
        ("PNG", "image/png", {}),
    ],
)
def test_animations_keep_every_frame_and_its_timing(fmt, content_type, extra):
    upload = _animation(fmt, **extra)
    stored = images.clean(content_type, upload, PIXELS)
    assert media_files.SECRET_TEXT.encode() not in stored
    before, after = _open(upload), _open(stored)
    assert after.n_frames == before.n_frames == 4
    timings = []
    for image in (before, after):
        frames = [
            (frame.info.get("duration"), frame.convert("RGB").tobytes()) for frame in ImageSequence.Iterator(image)
        ]
        timings.append(frames)
    assert timings[0] == timings[1]
    assert after.info.get("loop") == 0


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "image/gif", "image/webp"])
def test_clean_hand_made_images_are_stored_byte_for_byte(content_type):
    data = media_files.SAMPLES[content_type]()
    assert images.clean(content_type, data, PIXELS) == data


def test_private_png_chunks_are_dropped():
    padded = media_files.png(size=1000)
    stored = images.clean("image/png", padded, PIXELS)
    assert stored == media_files.png() and b"prVt" not in stored


def test_an_image_with_too_many_pixels_is_refused_before_it_is_decoded():
    out = io.BytesIO()
    Image.new("L", (2000, 1000)).save(out, "PNG")  # 2 million pixels in a few KiB
    message = _refused(images.clean, "image/png", out.getvalue(), PixelLimits(frame=1_000_000, animation=10**9))
    assert "2000x1000" in message and "at most 1,000,000" in message
    assert images.clean("image/png", out.getvalue(), PixelLimits(frame=2_000_000, animation=10**9))


def test_an_animation_with_too_many_pixels_in_all_is_refused():
    message = _refused(images.clean, "image/gif", _animation("GIF"), PixelLimits(frame=400, animation=1_000))
    assert "4 frames of 20x20" in message and "at most 1,000 pixels in all" in message


def _png_with_damaged_data() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 64), 40).save(out, "PNG")
    data = bytearray(out.getvalue())
    idat = data.index(b"IDAT") + 4
    data[idat + 20 : idat + 60] = bytes(40)
    return bytes(data)


def test_damaged_image_data_is_found_by_decoding_not_only_opening():
    damaged = _png_with_damaged_data()
    Image.open(io.BytesIO(damaged))  # the header alone looks fine
    message = _refused(images.clean, "image/png", damaged, PIXELS)
    assert "could not be decoded as image/png" in message


@pytest.mark.parametrize(
    "content_type, data, says",
    [
        ("image/png", media_files.png()[:33], "ends before its IEND chunk"),
        ("image/png", media_files.png()[:8] + b"\x00\x00\x10\x00IDAT" + b"\x00" * 20, "runs past the end"),
        ("image/jpeg", media_files.jpeg()[:-2], "ends"),
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "runs past the end"),
        ("image/gif", b"GIF89a" + b"\x00" * 20, "unknown block"),
        ("image/gif", media_files.gif()[:-1], "ends before its trailer"),
        ("image/webp", media_files.webp()[:20], "shorter than its RIFF header says"),
    ],
    ids=[
        "png-cut",
        "png-chunk-too-long",
        "jpeg-no-eoi",
        "jpeg-segment-too-long",
        "gif-garbage",
        "gif-no-trailer",
        "webp-cut",
    ],
)
def test_malformed_containers_are_refused_saying_where(content_type, data, says):
    message = _refused(images.clean, content_type, data, PIXELS)
    assert f"not a valid {content_type} file" in message and says in message


def test_a_png_whose_pixels_are_missing_is_refused():
    no_pixels = media_files.png().replace(media_files.png()[33:-12], b"")  # IHDR then IEND
    assert "could not be decoded" in _refused(images.clean, "image/png", no_pixels, PIXELS)


# -- videos --------------------------------------------------------------------------------


def _probe(data: bytes) -> dict:
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", f.name],
            check=True,
            capture_output=True,
        ).stdout
    return json.loads(out)


@pytest.mark.parametrize("content_type", ["video/mp4", "video/webm"])
def test_a_real_video_is_stored_without_its_tags(content_type):
    upload = media_files.video(content_type)
    assert media_files.SECRET_TEXT in json.dumps(_probe(upload))
    stored = asyncio.run(videos.clean(content_type, upload, TOOLS))
    probed = _probe(stored)
    assert [(s["codec_type"], s["width"], s["height"]) for s in probed["streams"]] == [("video", 64, 64)]
    assert media_files.SECRET_TEXT not in json.dumps(probed)
    assert media_files.SECRET_TEXT.encode() not in stored


def test_an_mp4_loses_its_gps_position_and_padding():
    upload = media_files.video("video/mp4", size=200_000)
    assert media_files.SECRET_ISO6709.encode() in upload
    stored = asyncio.run(videos.clean("video/mp4", upload, TOOLS))
    assert media_files.SECRET_ISO6709.encode() not in stored
    assert len(stored) < len(media_files.video("video/mp4"))
    assert stored[4:8] == b"ftyp" and stored.index(b"moov") < stored.index(b"mdat")  # index up front


@pytest.mark.parametrize(
    "content_type, data, says",
    [
        ("video/mp4", media_files.mp4()[:40], "has no video stream"),
        ("video/mp4", media_files.mp4(), "has no video stream"),
        ("video/webm", media_files.webm(), "is not a readable video/webm file"),
        ("video/mp4", media_files.video("video/mp4")[:3000], "is not a readable video/mp4 file"),
    ],
    ids=["40-byte-header", "empty-movie", "empty-webm", "cut-mp4"],
)
def test_videos_that_do_not_parse_or_hold_no_video_are_refused(content_type, data, says):
    assert says in _refused(videos.clean, content_type, data, TOOLS)


def test_a_stream_the_container_cannot_hold_is_refused_naming_why():
    # A VP8 stream in an MP4 wrapper: readable, but not storable as an MP4.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vp8.mp4")
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-nostdin",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=32x32:rate=5",
                "-c:v",
                "libvpx",
                "-f",
                "matroska",
                path,
            ],
            check=True,
        )
        with open(path, "rb") as f:
            mkv = f.read()
    message = _refused(videos.clean, "video/mp4", mkv, TOOLS)
    assert "cannot be stored as video/mp4" in message and "vp8" in message
    assert "/tmp" not in message and "0x" not in message


def test_a_probe_that_hangs_is_cut_off_and_refused():
    with tempfile.TemporaryDirectory() as tmp:
        hang = os.path.join(tmp, "ffprobe")
        with open(hang, "w") as f:
            f.write("#!/bin/sh\nexec sleep 60\n")
        os.chmod(hang, stat.S_IRWXU)
        tools = videos.Tools(ffprobe=hang, ffmpeg="ffmpeg", timeout_seconds=0.5)
        message = _refused(videos.clean, "video/mp4", media_files.video("video/mp4"), tools)
    assert "could not be read as video/mp4 within 0.5 s" in message


def test_an_undefined_orientation_is_dropped_without_turning_or_re_encoding():
    upload = media_files.photo("JPEG", width=48, height=32, orientation=9)
    stored = images.clean("image/jpeg", upload, PIXELS)
    _assert_no_metadata(stored)
    assert _open(stored).size == (48, 32) and _open(stored).tobytes() == _open(upload).tobytes()
