"""Images as they are stored: stripped of metadata and decoded in full.

Stripping is lossless: each format's container is walked and only what draws
the picture is copied (an allow-list, so anything unknown goes too): EXIF with
its GPS position, XMP, IPTC, comments, embedded thumbnails and anything after
the end of the image are dropped; colour profiles are kept. The stripped copy
is what gets decoded (every frame, within pixel limits) and stored.

The one exception is a still image whose EXIF says it is rotated or mirrored:
dropping that tag would turn it, so it is decoded, turned upright and encoded
again (JPEG at quality 92; WebP lossless when it was).

Pure CPU work, no I/O: the servicer runs it off the event loop.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, ImageSequence, JpegImagePlugin

from services.kit.server.errors import ApiError, invalid_argument

# Our own pixel limits refuse such images with a message; Pillow's warning adds nothing.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}

ORIENTATION_TAG = 0x0112
# EXIF orientations that turn or mirror the picture (1 is as stored; others are not defined).
TURNED = range(2, 9)
REENCODED_QUALITY = 92


@dataclass(frozen=True)
class PixelLimits:
    frame: int  # width x height of one picture
    animation: int  # summed over every frame of an animation


class Malformed(Exception):
    """The container is not well formed; the message says where it went wrong."""


def clean(content_type: str, data: bytes, limits: PixelLimits) -> bytes:
    """The bytes to store for an upload of `content_type` (already sniffed as
    that type), or INVALID_ARGUMENT naming `file`."""
    try:
        stripped, exif = STRIPPERS[content_type](data)
    except Malformed as exc:
        raise invalid_argument("file", f"is not a valid {content_type} file: {exc}") from None
    if _orientation(exif) in TURNED:
        upright = _upright(data, content_type, limits)
        if upright is not None:
            return upright
    _decoded(stripped, content_type, limits).close()
    return stripped


# ----------------------------------------------------------------------------- decoding


def _decoded(data: bytes, content_type: str, limits: PixelLimits) -> Image.Image:
    """The image with every frame decoded, or INVALID_ARGUMENT naming `file`."""
    try:
        image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[content_type]])
        _check_pixels(image, limits)
        for frame in ImageSequence.Iterator(image):
            frame.load()
        image.seek(0)
        return image
    except ApiError:
        raise
    except Image.DecompressionBombError:
        raise invalid_argument("file", f"has too many pixels; images may have at most {limits.frame:,}") from None
    # A decoder may raise anything on hostile bytes: all of it is the file's fault.
    except Exception:
        raise invalid_argument("file", f"could not be decoded as {content_type} (damaged or truncated)") from None


def _check_pixels(image: Image.Image, limits: PixelLimits) -> None:
    """Checked from the header alone, before anything is decoded."""
    width, height = image.size
    if width * height > limits.frame:
        raise invalid_argument(
            "file", f"is {width}x{height} pixels ({width * height:,}); images may have at most {limits.frame:,}"
        )
    frames = getattr(image, "n_frames", 1)
    if width * height * frames > limits.animation:
        raise invalid_argument(
            "file",
            f"has {frames} frames of {width}x{height} pixels ({width * height * frames:,} in all); "
            f"animations may have at most {limits.animation:,} pixels in all",
        )


def _orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    try:
        tags = Image.Exif()
        tags.load(exif)
        return int(tags.get(ORIENTATION_TAG, 1))
    # Unreadable EXIF has nothing to honour, and it is dropped anyway.
    except Exception:
        return 1


def _upright(data: bytes, content_type: str, limits: PixelLimits) -> bytes | None:
    """A still image turned as its EXIF orientation says, encoded without
    metadata; None for an animation (its frames are kept as they are)."""
    with _decoded(data, content_type, limits) as image:
        if getattr(image, "n_frames", 1) > 1:
            return None
        upright = ImageOps.exif_transpose(image)
        # Only what is passed below is written: nothing carried over from the original.
        upright.info = {}
        options = {"icc_profile": image.info.get("icc_profile")}
        if content_type == "image/jpeg":
            options.update(
                quality=REENCODED_QUALITY,
                subsampling=JpegImagePlugin.get_sampling(image),
                progressive=bool(image.info.get("progressive")),
            )
        elif content_type == "image/webp":
            options.update(quality=REENCODED_QUALITY, lossless=b"VP8L" in _riff_fourccs(data), exact=True)
        elif "transparency" in image.info:
            options["transparency"] = image.info["transparency"]
        out = io.BytesIO()
        upright.save(out, format=PIL_FORMATS[content_type], **{k: v for k, v in options.items() if v is not None})
        return out.getvalue()


# ----------------------------------------------------------------------------- JPEG


def strip_jpeg(data: bytes) -> tuple[bytes, bytes | None]:
    """Markers walked from SOI to EOI; APPn and COM segments dropped except the
    ICC profile (APP2), Adobe's colour transform (APP14) and a JFIF header
    (APP0, its thumbnail cut). Returns (stripped, the EXIF payload or None)."""
    if not data.startswith(b"\xff\xd8"):
        raise Malformed("it does not start with a JPEG start-of-image marker")
    out, exif, at, end = [b"\xff\xd8"], None, 2, len(data)
    while True:
        if at >= end or data[at] != 0xFF:
            raise Malformed("it ends or has stray bytes before its end-of-image marker")
        while at < end and data[at] == 0xFF:  # fill bytes
            at += 1
        if at >= end:
            raise Malformed("it ends before its end-of-image marker")
        marker = data[at]
        at += 1
        if marker == 0xD9:  # EOI: anything after it is dropped
            out.append(b"\xff\xd9")
            return b"".join(out), exif
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(bytes((0xFF, marker)))
            continue
        length = int.from_bytes(data[at : at + 2], "big")
        if length < 2 or at + length > end:
            raise Malformed("a segment runs past the end of the file")
        payload = data[at + 2 : at + length]
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00") and exif is None:
            exif = payload
        kept = _kept_jpeg_segment(marker, payload)
        if kept is not None:
            out.append(b"\xff" + bytes((marker,)) + (len(kept) + 2).to_bytes(2, "big") + kept)
        at += length
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            scan_end = _jpeg_scan_end(data, at)
            out.append(data[at:scan_end])
            at = scan_end


def _kept_jpeg_segment(marker: int, payload: bytes) -> bytes | None:
    """The payload to copy, or None to drop the segment."""
    if marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
        return payload[:12] + b"\x00\x00"  # no thumbnail
    if marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"):
        return payload
    if marker == 0xEE and payload.startswith(b"Adobe"):
        return payload
    # Frame, table, scan and restart-interval markers draw the picture; the rest is metadata.
    return payload if 0xC0 <= marker <= 0xCF or 0xDA <= marker <= 0xDF else None


def _jpeg_scan_end(data: bytes, at: int) -> int:
    """Where the next marker starts: an FF not followed by a stuffed 00 or a restart marker."""
    while True:
        ff = data.find(b"\xff", at)
        if ff < 0 or ff + 1 >= len(data):
            raise Malformed("it ends inside its image data")
        following = data[ff + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7:
            return ff
        at = ff + 2


# ----------------------------------------------------------------------------- PNG

# Chunks that draw the picture (APNG's frames included); text, EXIF, times and
# private chunks are dropped.
_PNG_KEPT = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"gAMA",
    b"cHRM",
    b"sRGB",
    b"iCCP",
    b"cICP",
    b"sBIT",
    b"bKGD",
    b"pHYs",
    b"acTL",
    b"fcTL",
    b"fdAT",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def strip_png(data: bytes) -> tuple[bytes, bytes | None]:
    if not data.startswith(_PNG_SIGNATURE):
        raise Malformed("it does not start with the PNG signature")
    out, exif, at = [_PNG_SIGNATURE], None, len(_PNG_SIGNATURE)
    while True:
        if at + 12 > len(data):
            raise Malformed("it ends before its IEND chunk")
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        chunk_end = at + 12 + length
        if chunk_end > len(data):
            raise Malformed(f"its {kind.decode('latin-1')!r} chunk runs past the end of the file")
        if kind == b"eXIf" and exif is None:
            exif = data[at + 8 : at + 8 + length]
        if kind in _PNG_KEPT:
            out.append(data[at:chunk_end])
        at = chunk_end
        if kind == b"IEND":  # anything after it is dropped
            return b"".join(out), exif


# ----------------------------------------------------------------------------- GIF

# Application extensions that only say how often an animation loops.
_GIF_LOOP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def strip_gif(data: bytes) -> tuple[bytes, None]:
    """Blocks walked to the trailer; comment, plain-text and application
    extensions dropped except the loop count. GIF has no EXIF."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise Malformed("it does not start with a GIF header")
    at = 13 + _gif_colour_table_size(data[10])
    out = [data[:at]]
    while True:
        if at >= len(data):
            raise Malformed("it ends before its trailer")
        block = data[at]
        if block == 0x3B:  # trailer: anything after it is dropped
            out.append(b"\x3b")
            return b"".join(out), None
        if block == 0x2C:  # image: descriptor, local colour table, LZW code size, data sub-blocks
            if at + 10 > len(data):
                raise Malformed("an image descriptor runs past the end of the file")
            end = _gif_sub_blocks_end(data, at + 10 + _gif_colour_table_size(data[at + 9]) + 1)
            out.append(data[at:end])
        elif block == 0x21:  # extension: label, sub-blocks
            end = _gif_sub_blocks_end(data, at + 2)
            if _gif_extension_kept(data[at + 1 : at + 2], data[at + 2 : end]):
                out.append(data[at:end])
        else:
            raise Malformed(f"it has an unknown block 0x{block:02x}")
        at = end


def _gif_colour_table_size(packed: int) -> int:
    return 3 * 2 ** ((packed & 0x07) + 1) if packed & 0x80 else 0


def _gif_sub_blocks_end(data: bytes, at: int) -> int:
    while True:
        if at >= len(data):
            raise Malformed("a block runs past the end of the file")
        size = data[at]
        at += 1 + size
        if size == 0:
            return at


def _gif_extension_kept(label: bytes, sub_blocks: bytes) -> bool:
    if label == b"\xf9":  # graphic control: frame delay, disposal, transparency
        return True
    return label == b"\xff" and sub_blocks[:1] == b"\x0b" and sub_blocks[1:12] in _GIF_LOOP_APPS


# ----------------------------------------------------------------------------- WebP

# Chunks that draw the picture: EXIF and XMP go, and their flags in VP8X with them.
_WEBP_KEPT = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
_VP8X_EXIF_AND_XMP_FLAGS = 0x08 | 0x04


def strip_webp(data: bytes) -> tuple[bytes, bytes | None]:
    chunks, exif = [], None
    for kind, payload in _riff_chunks(data):
        if kind == b"EXIF" and exif is None:
            exif = payload
        if kind == b"VP8X" and payload:
            payload = bytes((payload[0] & ~_VP8X_EXIF_AND_XMP_FLAGS,)) + payload[1:]
        if kind in _WEBP_KEPT:
            chunks.append(kind + len(payload).to_bytes(4, "little") + payload + b"\x00" * (len(payload) % 2))
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body, exif


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Malformed("it does not start with a RIFF WEBP header")
    end = 8 + int.from_bytes(data[4:8], "little")  # anything after the RIFF chunk is dropped
    if end > len(data):
        raise Malformed("it is shorter than its RIFF header says")
    chunks, at = [], 12
    while at < end:
        if at + 8 > end:
            raise Malformed("a chunk header runs past the end of the file")
        size = int.from_bytes(data[at + 4 : at + 8], "little")
        if at + 8 + size > end:
            raise Malformed(f"its {data[at : at + 4].decode('latin-1')!r} chunk runs past the end of the file")
        chunks.append((data[at : at + 4], data[at + 8 : at + 8 + size]))
        at += 8 + size + size % 2
    return chunks


def _riff_fourccs(data: bytes) -> list[bytes]:
    return [kind for kind, _ in _riff_chunks(data)]


STRIPPERS = {"image/jpeg": strip_jpeg, "image/png": strip_png, "image/gif": strip_gif, "image/webp": strip_webp}
