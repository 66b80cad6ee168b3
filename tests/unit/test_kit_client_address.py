"""The client address as Envoy finds it (use_remote_address, xff_num_trusted_hops)."""

from services.kit.server import client_address
from services.kit.settings import Settings, current, load


def test_without_trusted_hops_the_client_is_the_peer_envoy_appended():
    assert client_address.from_forwarded_for("203.0.113.9", 0) == "203.0.113.9"
    # Entries the client wrote itself are ignored.
    assert client_address.from_forwarded_for("6.6.6.6, 7.7.7.7,203.0.113.9", 0) == "203.0.113.9"


def test_each_trusted_hop_moves_one_entry_left():
    xff = "6.6.6.6, 198.51.100.4, 10.0.0.2,10.0.0.3"
    assert client_address.from_forwarded_for(xff, 1) == "10.0.0.2"
    assert client_address.from_forwarded_for(xff, 2) == "198.51.100.4"


def test_fewer_entries_than_trusted_hops_fall_back_to_envoys_peer():
    assert client_address.from_forwarded_for("10.0.0.3", 1) == "10.0.0.3"
    assert client_address.from_forwarded_for("", 1) is None
    assert client_address.from_forwarded_for(" , ", 0) is None


def test_envoys_own_verdict_wins_over_x_forwarded_for():
    headers = {"x-envoy-external-address": "203.0.113.9", "x-forwarded-for": "6.6.6.6,10.0.0.3"}
    assert client_address.from_headers(headers, 0) == "203.0.113.9"
    assert client_address.from_headers({"x-forwarded-for": "6.6.6.6,10.0.0.3"}, 1) == "6.6.6.6"


def test_grpc_metadata_joins_repeated_forwarded_for_lines_in_order():
    metadata = [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.4"), ("other", "x")]
    assert client_address.from_metadata(metadata, 0) == "198.51.100.4"
    assert client_address.from_metadata(metadata, 1) == "6.6.6.6"
    assert client_address.from_metadata([("x-envoy-external-address", "203.0.113.9")], 0) == "203.0.113.9"
    assert client_address.from_metadata([], 0) is None


def test_the_host_of_a_grpc_peer():
    assert client_address.from_peer("ipv4:127.0.0.1:50051") == "127.0.0.1"
    assert client_address.from_peer("ipv6:[::1]:50051") == "::1"
    assert client_address.from_peer("ipv6:%5B2001:db8::1%5D:50051") == "2001:db8::1"


def test_trusted_hops_come_from_envoys_setting():
    assert load(Settings, {}).xff_trusted_hops == 0
    assert load(Settings, {"ENVOY_XFF_TRUSTED_HOPS": "2"}).xff_trusted_hops == 2
    assert client_address.trusted_hops() == current().xff_trusted_hops
