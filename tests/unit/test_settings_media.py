"""media's settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.media.settings import MediaSettings


def test_defaults_are_unchanged():
    s = load(MediaSettings, {})
    assert s.max_image_bytes == 5 * 1024 * 1024
    assert s.max_video_bytes == 15 * 1024 * 1024
    assert s.max_image_pixels == 40_000_000
    assert s.max_animation_pixels == 200_000_000
    assert s.ffprobe == "ffprobe"
    assert s.ffmpeg == "ffmpeg"
    assert s.video_timeout_seconds == 10.0
    assert s.processing_concurrency == 2
    assert s.s3_endpoint == "http://127.0.0.1:9000"
    assert s.s3_access_key == "aviary"
    assert s.s3_secret_key == "aviary-devstack-secret"
    assert s.bucket == "aviary-media"
    assert s.s3_region == "us-east-1"
    assert s.envoy_port == 8080
    assert s.public_url == "http://127.0.0.1:8080/media"


def test_the_public_url_defaults_to_envoys_port():
    assert load(MediaSettings, {"ENVOY_PORT": "18080"}).public_url == "http://127.0.0.1:18080/media"
    assert load(MediaSettings, {"ENVOY_PORT": "18080", "AVIARY_MEDIA_PUBLIC_URL": "https://cdn/m"}).public_url == (
        "https://cdn/m"
    )


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_MEDIA_PROCESSING_CONCURRENCY"):
        load(MediaSettings, {"AVIARY_MEDIA_PROCESSING_CONCURRENCY": "lots"})
