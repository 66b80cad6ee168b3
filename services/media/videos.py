"""Videos as they are stored: probed, then remuxed without metadata.

ffprobe must parse the container, find a video stream (cover art does not
count) and decode its first frame. ffmpeg then copies the video and audio
streams bit for bit into a fresh container of the same type, leaving out
global and per-stream tags (camera, GPS position, titles), chapters and any
data or subtitle tracks; an MP4 gets its index up front so it plays while it
downloads. Both come from Debian's `ffmpeg` package and run as subprocesses on
a temporary copy of the upload (an MP4's index may sit at its end, which a
pipe cannot seek to), under one deadline for the whole check.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from services.kit.server.errors import invalid_argument, unavailable
from services.media.settings import MediaSettings

# The ffmpeg muxer each type is written with.
MUXERS = {"video/mp4": "mp4", "video/webm": "webm"}

# "[mp4 @ 0x55d0c0a1b2c0] " before a message.
_COMPONENT_TAG = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\] ")

_REMUX_OPTIONS = {
    "video/mp4": ["-movflags", "+faststart"],
    "video/webm": [],
}


@dataclass(frozen=True)
class Tools:
    ffprobe: str
    ffmpeg: str
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> "Tools":
        return cls(ffprobe=settings.ffprobe, ffmpeg=settings.ffmpeg, timeout_seconds=settings.video_timeout_seconds)


async def clean(content_type: str, data: bytes, tools: Tools) -> bytes:
    """The bytes to store for an upload of `content_type` (already sniffed as
    that type), or INVALID_ARGUMENT naming `file`."""
    workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="aviary-media-")
    source, target = os.path.join(workdir, "upload"), os.path.join(workdir, "stored")
    try:
        await asyncio.to_thread(_write, source, data)
        async with asyncio.timeout(tools.timeout_seconds):
            await _probe(content_type, source, tools)
            await _remux(content_type, source, target, tools)
        return await asyncio.to_thread(_read, target)
    except TimeoutError:
        raise invalid_argument(
            "file", f"could not be read as {content_type} within {tools.timeout_seconds:g} s"
        ) from None
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


async def _probe(content_type: str, path: str, tools: Tools) -> None:
    code, out, err = await _run(
        [
            tools.ffprobe,
            "-v",
            "error",
            "-threads",
            "1",
            "-of",
            "json",
            "-show_streams",
            # Decodes the first frame of the first video stream that is not cover art.
            "-select_streams",
            "V:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=width,height",
            path,
        ]
    )
    if code != 0:
        raise invalid_argument("file", f"is not a readable {content_type} file: {_reason(err, path)}")
    found = json.loads(out or b"{}")
    if not found.get("streams"):
        raise invalid_argument("file", f"has no video stream; upload a {content_type} video")
    if not found.get("frames"):
        raise invalid_argument("file", "has a video stream whose first frame cannot be decoded")


async def _remux(content_type: str, source: str, target: str, tools: Tools) -> None:
    code, _, err = await _run(
        [
            tools.ffmpeg,
            "-v",
            "error",
            "-nostdin",
            "-threads",
            "1",
            "-i",
            source,
            "-map",
            "0:V",
            "-map",
            "0:a?",
            "-c",
            "copy",
            "-map_metadata",
            "-1",
            "-map_metadata:s",
            "-1",
            "-map_chapters",
            "-1",
            "-fflags",
            "+bitexact",
            *_REMUX_OPTIONS[content_type],
            "-f",
            MUXERS[content_type],
            target,
        ]
    )
    if code != 0:
        raise invalid_argument("file", f"cannot be stored as {content_type}: {_reason(err, source)}")


async def _run(args: list[str]) -> tuple[int, bytes, bytes]:
    # Started by the standard library's posix_spawn (an absolute path, close_fds
    # off; Python and gRPC open every descriptor close-on-exec), never by the
    # event loop: uvloop spawns with fork(), which runs gRPC's at-fork handlers,
    # and their restarted threads crash the child before it execs.
    executable = shutil.which(args[0])
    if executable is None:
        raise unavailable(f"{args[0]} is not installed")
    process = subprocess.Popen(
        [executable, *args[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=False,
    )
    try:
        out, err = await asyncio.to_thread(process.communicate)
        return process.returncode, out, err
    finally:
        # A deadline or a cancelled call leaves no ffmpeg behind.
        if process.returncode is None:
            process.kill()
            await asyncio.to_thread(process.wait)


def _reason(stderr: bytes, path: str) -> str:
    """ffmpeg's first complaint, without its component tag or our temporary path."""
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    first = _COMPONENT_TAG.sub("", lines[0]) if lines else "unknown error"
    return first.replace(path + ": ", "").replace(path, "the file").strip()[:200]


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
