"""The media service's settings (AVIARY_MEDIA_*, AVIARY_S3_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting

MiB = 1024 * 1024


@dataclass(frozen=True)
class MediaSettings(Settings):
    max_image_bytes: int = setting("AVIARY_MEDIA_MAX_IMAGE_BYTES", 5 * MiB, "Largest accepted image upload, in bytes.")
    max_video_bytes: int = setting("AVIARY_MEDIA_MAX_VIDEO_BYTES", 15 * MiB, "Largest accepted video upload, in bytes.")
    max_image_pixels: int = setting(
        "AVIARY_MEDIA_MAX_IMAGE_PIXELS", 40_000_000, "Most pixels (width x height) of one image or frame."
    )
    max_animation_pixels: int = setting(
        "AVIARY_MEDIA_MAX_ANIMATION_PIXELS", 200_000_000, "Most pixels of an animation, summed over every frame."
    )
    ffprobe: str = setting("AVIARY_MEDIA_FFPROBE", "ffprobe", "The ffprobe binary that checks videos.")
    ffmpeg: str = setting("AVIARY_MEDIA_FFMPEG", "ffmpeg", "The ffmpeg binary that remuxes videos without metadata.")
    video_timeout_seconds: float = setting(
        "AVIARY_MEDIA_VIDEO_TIMEOUT_SECONDS",
        10.0,
        "Deadline of a video's probe and remux; past it the file is refused.",
    )
    processing_concurrency: int = setting(
        "AVIARY_MEDIA_PROCESSING_CONCURRENCY", 2, "Uploads decoded or probed at a time per process (CPU and memory)."
    )
    s3_endpoint: str = setting("AVIARY_S3_ENDPOINT", "http://127.0.0.1:9000", "The S3-compatible object store.")
    s3_access_key: str = setting("AVIARY_S3_ACCESS_KEY", "aviary", "Object store access key.")
    s3_secret_key: str = setting("AVIARY_S3_SECRET_KEY", "aviary-devstack-secret", "Object store secret key.")
    bucket: str = setting("AVIARY_MEDIA_BUCKET", "aviary-media", "The bucket media objects are stored in.")
    s3_region: str = setting("AVIARY_S3_REGION", "us-east-1", "Object store region (SigV4 signing).")
    envoy_port: int = setting(
        "ENVOY_PORT", 8080, "Envoy's public HTTP port; only feeds the default of AVIARY_MEDIA_PUBLIC_URL."
    )
    public_url: str = setting(
        "AVIARY_MEDIA_PUBLIC_URL",
        lambda s: f"http://127.0.0.1:{s.envoy_port}/media",
        "Where clients fetch objects (Envoy routes <url>/<key> to the bucket); media URLs start with it.",
        shown="http://127.0.0.1:8080/media (port: ENVOY_PORT)",
    )
