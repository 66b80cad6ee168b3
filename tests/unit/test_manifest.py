"""services/manifest.toml agrees with the code: folders, APIs, the public edge,
Kafka topics and who calls whom."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from gateway.routes import public_services
from services.kit import manifest
from services.kit.events.kafka import TOPICS

SERVICES_DIR = Path(manifest.MANIFEST).parent
# A service's use of a peer, as written in its code.
PEER_USES = {
    r"\bclients\.(\w+)\(": None,  # clients.graph() -> graph
    r"\bclients\.user_summaries\(": "identity",
    r"\bmedia\.(?:check_own_uploads|lookup)\(": "media",
    r"\bproducts\.lookup\(": "catalog",
    r"\bengagement_(?:overlay|stream)\b": "engagement",
    r"\bsafety\.HiddenAuthors\(": "graph",
}


def _service_folders() -> set[str]:
    return {p.parent.name for p in SERVICES_DIR.glob("*/__main__.py")}


def test_every_service_folder_has_an_entry_and_every_entry_a_folder():
    assert set(manifest.services()) == _service_folders()


def test_each_grpc_service_exists_in_the_generated_stubs():
    for entry in manifest.services().values():
        for full_name in entry.grpc:
            _, domain, version, service = full_name.split(".")
            module = importlib.import_module(f"aviary.{domain}.{version}.{domain}_pb2")
            assert service in module.DESCRIPTOR.services_by_name, full_name


def test_public_means_the_edge_routes_some_of_its_methods():
    routed = {cluster for cluster, _ in public_services()}
    assert {name for name, e in manifest.services().items() if e.public} == routed


def test_consumer_groups_read_topics_that_exist():
    for entry in manifest.services().values():
        for group, topics in entry.consumes.items():
            assert set(topics) <= set(TOPICS), (entry.name, group)


def _peers_used_by(name: str) -> set[str]:
    used: set[str] = set()
    for path in (SERVICES_DIR / name).rglob("*.py"):
        text = path.read_text()
        for pattern, peer in PEER_USES.items():
            for match in re.finditer(pattern, text):
                used.add(peer or match.group(1))
    return (used & set(manifest.services())) - {name}


@pytest.mark.parametrize("name", sorted(manifest.services()))
def test_a_service_calls_only_peers_that_list_it_as_a_caller(name):
    for peer in _peers_used_by(name):
        assert name in manifest.service(peer).callers, f"{name} calls {peer}: add it to [{peer}] callers"


def test_callers_listed_are_callers_indeed():
    for entry in manifest.services().values():
        for caller in entry.callers:
            assert entry.name in _peers_used_by(caller), f"[{entry.name}] lists {caller}, which never calls it"


def test_the_table_refuses_shared_ports_and_blocks():
    entries = dict(manifest.services())
    clash = manifest.ServiceEntry(name="copy", port=entries["graph"].port, id_block=31, worker=True)
    with pytest.raises(ValueError, match="share port"):
        manifest.check({**entries, "copy": clash})
    clash = manifest.ServiceEntry(name="copy", port=1, id_block=entries["graph"].id_block, worker=True)
    with pytest.raises(ValueError, match="share id_block"):
        manifest.check({**entries, "copy": clash})


async def test_any_service_in_the_manifest_has_a_stub(monkeypatch):
    import grpc

    from services.kit.peers import clients

    # The stubs' types only: plaintext channels, no mesh certificates needed.
    monkeypatch.setattr(clients, "_open", lambda name: grpc.aio.insecure_channel(f"{name}.invalid:1"))
    monkeypatch.setattr(clients._mesh_credentials, "renewed", lambda: False)
    try:
        for name, entry in manifest.services().items():
            if entry.worker:
                with pytest.raises(ValueError, match="worker"):
                    clients.stub(name)
            else:
                assert type(clients.stub(name)).__name__ == entry.grpc[0].rsplit(".", 1)[1] + "Stub"
    finally:
        await clients.close_all()


async def test_a_stub_is_made_once_per_channel(monkeypatch):
    import grpc

    from services.kit.peers import clients

    monkeypatch.setattr(clients, "_open", lambda name: grpc.aio.insecure_channel(f"{name}.invalid:1"))
    monkeypatch.setattr(clients._mesh_credentials, "renewed", lambda: False)
    try:
        first = clients.graph()
        assert clients.graph() is first
        assert clients.stub("graph") is first
        assert clients.timeline() is not first
        # A channel closed (or retired at a certificate renewal) takes its stubs with it.
        await clients.close_all()
        again = clients.graph()
        assert again is not first
        assert clients.graph() is again
        # However the channel came to be replaced, the stub follows it.
        await clients._channels.pop("graph").close()
        assert clients.graph() is not again
    finally:
        await clients.close_all()
