"""What an upload may be: allowed types, size limits and content sniffing.

Pure functions, no I/O. The declared type (the HTTP Content-Type header, which
the transcoder puts into HttpBody.content_type) must be an allowed type, the
size must be within that type's limit, and the leading bytes must be what that
type starts with: a PNG labelled image/jpeg, or text labelled image/png, is
refused. Nothing is guessed from the data alone: a client that does not know
what it is uploading gets told so. Past these checks the file is parsed in
full (`images.py`, `videos.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.server.errors import invalid_argument
from services.media.images import PixelLimits
from services.media.settings import MediaSettings

MiB = 1024 * 1024

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
VIDEO_TYPES = ("video/mp4", "video/webm")
ALLOWED_TYPES = IMAGE_TYPES + VIDEO_TYPES

# Object-key extensions (the URL ends with them, which helps clients and CDNs).
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/webm": "webm",
}

# Spellings seen in the wild for the same type.
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}

# ISO-BMFF major brands of still images (HEIF/AVIF): an `ftyp` box with one of
# these is a photo, not an MP4 video.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}


@dataclass(frozen=True)
class Limits:
    """Largest accepted upload per kind, in bytes, and largest image in pixels
    (decoded size is what a small file can blow up to)."""

    image_bytes: int = 5 * MiB
    video_bytes: int = 15 * MiB
    image_pixels: int = 40_000_000
    animation_pixels: int = 200_000_000

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> "Limits":
        return cls(
            image_bytes=settings.max_image_bytes,
            video_bytes=settings.max_video_bytes,
            image_pixels=settings.max_image_pixels,
            animation_pixels=settings.max_animation_pixels,
        )

    @property
    def pixels(self) -> PixelLimits:
        return PixelLimits(frame=self.image_pixels, animation=self.animation_pixels)

    @property
    def largest(self) -> int:
        return max(self.image_bytes, self.video_bytes)

    def for_type(self, content_type: str) -> int:
        return self.image_bytes if content_type in IMAGE_TYPES else self.video_bytes


def normalize_content_type(raw: str) -> str:
    """'Image/PNG; charset=x' -> 'image/png' (parameters dropped, aliases folded)."""
    base = raw.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def sniff(data: bytes) -> str | None:
    """The allowed type the leading bytes say this is, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return None if data[8:12] in _IMAGE_BRANDS else "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3") and _ebml_doctype(data) == b"webm":
        return "video/webm"
    return None


def _ebml_doctype(data: bytes) -> bytes | None:
    """The DocType of an EBML header ('webm', 'matroska'), read from its first bytes."""
    header = data[:64]
    at = header.find(b"\x42\x82")  # DocType element id
    if at < 0 or at + 3 > len(header):
        return None
    size_byte = header[at + 2]
    if not size_byte & 0x80:  # only the one-byte size form occurs in practice
        return None
    size = size_byte & 0x7F
    return header[at + 3 : at + 3 + size]


def human_size(size: int) -> str:
    if size >= MiB:
        return f"{size / MiB:.1f} MiB".replace(".0 MiB", " MiB")
    if size >= 1024:
        return f"{size / 1024:.1f} KiB".replace(".0 KiB", " KiB")
    return f"{size} bytes"


def check_upload(declared_type: str, data: bytes, limits: Limits) -> str:
    """The canonical content type of an acceptable upload, else INVALID_ARGUMENT.

    Checked in the order a client can act on: the type it declared, then the
    size, then whether the bytes are really of that type."""
    content_type = normalize_content_type(declared_type or "")
    allowed = ", ".join(ALLOWED_TYPES)
    if not content_type:
        raise invalid_argument("file.content_type", f"is required: send the Content-Type header, one of {allowed}")
    if content_type not in ALLOWED_TYPES:
        raise invalid_argument("file.content_type", f"{content_type[:80]!r} is not allowed; upload one of {allowed}")
    size = len(data)
    if size == 0:
        raise invalid_argument("file", "is empty; send the file's bytes as the request body")
    limit = limits.for_type(content_type)
    if size > limit:
        kind = "images" if content_type in IMAGE_TYPES else "videos"
        raise invalid_argument(
            "file", f"is {human_size(size)} ({size} bytes); {kind} may be at most {human_size(limit)} ({limit} bytes)"
        )
    actual = sniff(data)
    if actual != content_type:
        what = f"looks like {actual}" if actual else "is not a recognizable image or video"
        raise invalid_argument("file", f"was declared as {content_type} but its content {what}")
    return content_type


MAX_ALT_TEXT = 1000
# Line breaks and tabs are kept (a description may have paragraphs); other
# control characters have no place in text read aloud.
_ALT_TEXT_ALLOWED_CONTROLS = frozenset("\n\t")


def check_alt_text(value: str) -> str:
    """The alternative text as stored: trimmed, at most MAX_ALT_TEXT
    characters (code points), no control characters but line breaks and tabs."""
    text = value.replace("\r\n", "\n").strip()
    if len(text) > MAX_ALT_TEXT:
        raise invalid_argument("alt_text", f"must be at most {MAX_ALT_TEXT} characters, got {len(text)}")
    for char in text:
        if (char < " " or "\x7f" <= char <= "\x9f") and char not in _ALT_TEXT_ALLOWED_CONTROLS:
            raise invalid_argument("alt_text", f"must not contain control characters (found U+{ord(char):04X})")
    return text
