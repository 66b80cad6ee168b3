"""Small media files for tests.

The image builders write tiny, already clean files by hand: each is bytes a
real decoder accepts, stored unchanged; `size=` pads a PNG to an exact length
with an ancillary chunk (which the service strips). `mp4()` and `webm()` are
containers with no video in them, for sniffing tests. Real videos come from
ffmpeg and photos with metadata from Pillow, both of which the media service
itself uses.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import struct
import tempfile
import zlib


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(size: int | None = None, rgb: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A 1x1 truecolour PNG; with `size`, padded to exactly that many bytes (size >= 81)."""
    head = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    idat = _png_chunk(b"IDAT", zlib.compress(b"\x00" + bytes(rgb)))
    end = _png_chunk(b"IEND", b"")
    if size is None:
        return head + idat + end
    pad = size - len(head) - len(idat) - len(end) - 12
    if pad < 0:
        raise ValueError(f"a padded PNG is at least {size - pad} bytes")
    # 'prVt': private, ancillary, safe to copy: decoders skip it.
    return head + _png_chunk(b"prVt", b"\x00" * pad) + idat + end


def jpeg() -> bytes:
    """A 1x1 grayscale baseline JPEG (one 8x8 block: DC 0, end of block)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + b"\x01" * 64
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 1, 1, 1) + b"\x01\x11\x00"
    # One Huffman code of length 1 per table: DC symbol 0 (no difference), AC symbol 0 (EOB).
    counts = b"\x01" + b"\x00" * 15
    dht = (
        b"\xff\xc4"
        + struct.pack(">H", 2 + 2 * 18)
        + b"\x00"
        + counts
        + b"\x00"  # DC table 0
        + b"\x10"
        + counts
        + b"\x00"
    )  # AC table 0
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00" + b"\x00\x3f\x00"
    scan = b"\x3f"  # bits 0 (DC) 0 (EOB), padded with ones
    return b"\xff\xd8" + app0 + dqt + sof0 + dht + sos + scan + b"\xff\xd9"


def gif() -> bytes:
    """A 1x1 GIF89a."""
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
        b"\x21\xf9\x04\x01\x00\x00\x00\x00"
        b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
    )


def webp() -> bytes:
    """A 1x1 lossless WebP."""
    vp8l = b"\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
    chunk = b"VP8L" + struct.pack("<I", 13) + vp8l[:13] + b"\x00"  # even-padded chunk
    body = b"WEBP" + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4(size: int | None = None, brand: bytes = b"isom") -> bytes:
    """An MP4 with an ftyp and an empty movie (mvhd); with `size`, a `free` box pads it."""
    ftyp = _box(b"ftyp", brand + struct.pack(">I", 0x200) + b"isomiso2mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">IIIII", 0, 0, 0, 1000, 0)
        + struct.pack(">IH", 0x10000, 0x100)
        + b"\x00" * 10
        + matrix
        + b"\x00" * 24
        + struct.pack(">I", 1),
    )
    moov = _box(b"moov", mvhd)
    out = ftyp + moov
    if size is not None:
        pad = size - len(out) - 8
        if pad < 0:
            raise ValueError(f"a padded MP4 is at least {len(out) + 8} bytes")
        out += _box(b"free", b"\x00" * pad)
    return out


def _ebml(element_id: bytes, payload: bytes) -> bytes:
    # 8-byte size field (0x01 marker + 7 bytes) fits any payload here.
    return element_id + b"\x01" + len(payload).to_bytes(7, "big") + payload


def webm(doctype: bytes = b"webm") -> bytes:
    """An EBML header (DocType webm) and an empty Segment."""
    header = (
        b"\x42\x86\x81\x01"
        b"\x42\xf7\x81\x01"
        b"\x42\xf2\x81\x04"
        b"\x42\xf3\x81\x08" + b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype + b"\x42\x87\x81\x04"
        b"\x42\x85\x81\x02"
    )
    ebml = b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(header)]) + header
    return ebml + _ebml(b"\x18\x53\x80\x67", _ebml(b"\x15\x49\xa9\x66", b"\x2a\xd7\xb1\x83\x0f\x42\x40"))


# A place a photo or video must never give away (the Eiffel tower).
SECRET_PLACE = ((48, 51, 29), (2, 17, 40))
SECRET_ISO6709 = "+48.8580+002.2944+035.000/"
SECRET_TEXT = "aviary-test-secret"


def _exif_with_gps(orientation: int = 1):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = SECRET_TEXT  # camera make
    (lat, lon) = SECRET_PLACE
    exif.get_ifd(0x8825).update({1: "N", 2: tuple(float(v) for v in lat), 3: "E", 4: tuple(float(v) for v in lon)})
    return exif


def photo(fmt: str = "JPEG", width: int = 48, height: int = 32, orientation: int = 1) -> bytes:
    """A picture with EXIF (GPS position, camera make, orientation), XMP and a
    comment; its left half red and right half blue, so a turn shows."""
    from PIL import Image

    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    extra = {"comment": SECRET_TEXT.encode()} if fmt == "JPEG" else {}
    out = io.BytesIO()
    image.save(
        out,
        fmt,
        exif=_exif_with_gps(orientation),
        xmp=f"<x:xmpmeta xmlns:x='adobe:ns:meta/'>{SECRET_TEXT}</x:xmpmeta>".encode(),
        **extra,
    )
    return out.getvalue()


@functools.cache
def _ffmpeg_video(content_type: str) -> bytes:
    codec, muxer = {"video/mp4": ("mpeg4", "mp4"), "video/webm": ("libvpx", "webm")}[content_type]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"out.{muxer}")
        location = (
            ["-movflags", "use_metadata_tags", "-metadata", f"com.apple.quicktime.location.ISO6709={SECRET_ISO6709}"]
            if muxer == "mp4"
            else []
        )
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-nostdin",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=64x64:rate=10",
                "-c:v",
                codec,
                "-metadata",
                f"title={SECRET_TEXT}",
                *location,
                "-f",
                muxer,
                path,
            ],
            check=True,
            timeout=60,
        )
        with open(path, "rb") as f:
            return f.read()


def video(content_type: str = "video/mp4", size: int | None = None) -> bytes:
    """A real one-second 64x64 video made by ffmpeg, tagged with a title (and
    for MP4 a GPS position); with `size`, an MP4 is padded by a `free` box."""
    data = _ffmpeg_video(content_type)
    if size is None:
        return data
    if content_type != "video/mp4" or size < len(data) + 8:
        raise ValueError(f"only MP4s of at least {len(data) + 8} bytes can be padded")
    return data + _box(b"free", b"\x00" * (size - len(data) - 8))


SAMPLES = {
    "image/png": png,
    "image/jpeg": jpeg,
    "image/gif": gif,
    "image/webp": webp,
    "video/mp4": functools.partial(video, "video/mp4"),
    "video/webm": functools.partial(video, "video/webm"),
}
