"""OpenSearch for the devstack: one node on 127.0.0.1, plain HTTP, run from Maven Central jars.

Defines the component ``OPENSEARCH`` (registered in ``devstack.backends``). The
server loads plugin code only from ``<path.home>/modules/<name>/``, never from its
classpath (the jar-hell check fails if a module's jar is on both), so ``prepare``
copies each module's jars (``MODULES``) there with a generated descriptor, and
``argv`` lists every other jar on ``-cp`` explicitly. Run as root, JNA's native
library is made unfindable so the node skips its root check. Where the jars come
from, why each module is here, the expected warnings and the files it writes:
devstack/README.md, "OpenSearch".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from pathlib import Path

from . import config
from .proc import Component, DevstackError

H = config.HOST
OPENSEARCH_VERSION = "2.19.6"
OPENSEARCH_PORT = config.env_int("OPENSEARCH_PORT", 9200)
OPENSEARCH_TRANSPORT_PORT = config.env_int("OPENSEARCH_TRANSPORT_PORT", 9300)
OPENSEARCH_HEAP = os.environ.get("OPENSEARCH_HEAP", "512m")

OS_DATA = config.DATA / "opensearch"
OS_HOME = OS_DATA / "home"
OS_CONF = config.CONF / "opensearch"

# Module name -> (plugin class, artifact names of its jars, extended plugins, security policy).
_NETTY_POLICY = """\
grant {
  permission java.io.FilePermission "/proc/sys/net/core/somaxconn", "read";
  permission java.net.SocketPermission "*", "accept,connect";
  permission java.lang.RuntimePermission "*", "setContextClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
  permission java.util.PropertyPermission "sun.nio.ch.bugLevel", "write";
};
"""
_PAINLESS_POLICY = """\
grant {
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""
_REINDEX_POLICY = """\
grant {
  permission java.net.SocketPermission "*", "connect";
};
grant codeBase "${codebase.opensearch-rest-client}" {
  permission java.net.NetPermission "getProxySelector";
};
grant codeBase "${codebase.httpasyncclient}" {
  permission java.net.NetPermission "getProxySelector";
};
"""
MODULES: dict[str, dict] = {
    "transport-netty4": {
        "classname": "org.opensearch.transport.Netty4Plugin",
        "description": "Netty 4 based transport and HTTP implementation",
        "jars": [
            "transport-netty4-client",
            "netty-buffer",
            "netty-codec",
            "netty-codec-http",
            "netty-common",
            "netty-handler",
            "netty-resolver",
            "netty-transport",
            "netty-transport-native-unix-common",
        ],
        "extends": [],
        "policy": _NETTY_POLICY,
    },
    "lang-painless": {
        "classname": "org.opensearch.painless.PainlessPlugin",
        "description": "An easy, safe and fast scripting language for OpenSearch",
        "jars": [
            "lang-painless",
            "opensearch-scripting-painless-spi",
            "antlr4-runtime",
            "asm",
            "asm-analysis",
            "asm-commons",
            "asm-tree",
            "asm-util",
        ],
        "extends": [],
        "policy": _PAINLESS_POLICY,
    },
    "analysis-common": {
        "classname": "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "description": 'Adds "built in" analyzers to OpenSearch.',
        "jars": ["analysis-common"],
        "extends": ["lang-painless"],
        "policy": None,
    },
    "reindex": {
        "classname": "org.opensearch.index.reindex.ReindexPlugin",
        "description": "The Reindex module adds APIs to reindex from one index to another or "
        "update documents in place.",
        "jars": [
            "reindex-client",
            "opensearch-rest-client",
            "opensearch-ssl-config",
            "httpasyncclient",
            "httpclient",
            "httpcore",
            "httpcore-nio",
            "commons-codec",
            "commons-logging",
        ],
        "extends": [],
        "policy": _REINDEX_POLICY,
    },
    "mapper-extras": {
        "classname": "org.opensearch.index.mapper.MapperExtrasPlugin",
        "description": "Adds advanced field mappers",
        "jars": ["mapper-extras-client"],
        "extends": [],
        "policy": None,
    },
}
# Never on the server classpath (see "Running as root" above).
_EXCLUDED: set[str] = set()

_JAR_RE = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[^-]*(?:-[^-]+)?)\.jar$")


def _artifact(jar: Path) -> str:
    m = _JAR_RE.match(jar.name)
    return m.group("artifact") if m else jar.stem


def _jars() -> Path:
    return config.jars_dir("opensearch")


def _module_of() -> dict[str, str]:
    return {a: name for name, spec in MODULES.items() for a in spec["jars"]}


def server_classpath(jars: Path | None = None) -> list[Path]:
    jars = jars or _jars()
    mods = _module_of()
    return sorted(j for j in jars.glob("*.jar") if _artifact(j) not in mods and _artifact(j) not in _EXCLUDED)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _sync_modules(jars: Path) -> None:
    """(Re)build home/modules/<name>/ from the jar cache; idempotent, removes stale files."""
    mods = _module_of()
    found: dict[str, list[Path]] = {name: [] for name in MODULES}
    for jar in jars.glob("*.jar"):
        name = mods.get(_artifact(jar))
        if name:
            found[name].append(jar)
    root = OS_HOME / "modules"
    for stale in (p for p in root.glob("*") if p.name not in MODULES) if root.exists() else ():
        shutil.rmtree(stale, ignore_errors=True)
    for name, spec in MODULES.items():
        missing = set(spec["jars"]) - {_artifact(j) for j in found[name]}
        if missing:
            raise DevstackError(
                f"opensearch: module {name}: jars {sorted(missing)} missing in {jars} "
                "(pom out of sync with devstack/opensearch.py?)"
            )
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        want = {j.name for j in found[name]}
        for f in d.iterdir():
            if f.suffix == ".jar" and f.name not in want:
                f.unlink()
        for j in found[name]:
            dst = d / j.name
            if not dst.exists() or dst.stat().st_size != j.stat().st_size:
                shutil.copyfile(j, dst)
        _write(
            d / "plugin-descriptor.properties",
            "\n".join(
                [
                    "# generated by devstack/opensearch.py",
                    f"description={spec['description']}",
                    f"version={OPENSEARCH_VERSION}",
                    f"name={name}",
                    f"classname={spec['classname']}",
                    "java.version=11",
                    f"opensearch.version={OPENSEARCH_VERSION}",
                    f"extended.plugins={','.join(spec['extends'])}",
                    "has.native.controller=false",
                    "",
                ]
            ),
        )
        policy = d / "plugin-security.policy"
        if spec["policy"]:
            _write(policy, spec["policy"])
        else:
            policy.unlink(missing_ok=True)


# See "Running as root" in the module docstring: JNA's classes stay on the classpath (the
# bootstrap links against them) but its native library is never found, so the node treats
# JNA as unavailable.
_NO_JNA_NATIVE = ["-Djna.nosys=true", "-Djna.nounpack=true", f"-Djna.boot.library.path={OS_DATA / 'no-jna'}"]


def jvm_flags() -> list[str]:
    """The JVM flags of the distribution's config/jvm.options that apply to Java 17."""
    heap = OPENSEARCH_HEAP
    return [
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:G1ReservePercent=25",
        "-XX:InitiatingHeapOccupancyPercent=30",
        "-XX:-OmitStackTraceInFastThrow",
        "-XX:+ShowCodeDetailsInExceptionMessages",
        "-Xss1m",
        "-Djava.awt.headless=true",
        "-Dfile.encoding=UTF-8",
        *_NO_JNA_NATIVE,
        "-Dio.netty.noUnsafe=true",
        "-Dio.netty.noKeySetOptimization=true",
        "-Dio.netty.recycler.maxCapacityPerThread=0",
        "-Dio.netty.allocator.numDirectArenas=0",
        "-Dlog4j.shutdownHookEnabled=false",
        "-Dlog4j2.disable.jmx=true",
        "-Djava.locale.providers=SPI,COMPAT",
        "-Dopensearch.networkaddress.cache.ttl=60",
        "-Dopensearch.networkaddress.cache.negative.ttl=10",
        f"-Djava.io.tmpdir={OS_DATA / 'tmp'}",
        "-XX:+HeapDumpOnOutOfMemoryError",
        f"-XX:HeapDumpPath={OS_DATA / 'logs'}",
        f"-XX:ErrorFile={OS_DATA / 'logs' / 'hs_err_pid%p.log'}",
    ]


def _prepare() -> None:
    jars = _jars()
    for sub in ("data", "logs", "tmp"):
        (OS_DATA / sub).mkdir(parents=True, exist_ok=True)
    (OS_HOME / "plugins").mkdir(parents=True, exist_ok=True)
    _sync_modules(jars)
    _write(
        OS_CONF / "opensearch.yml",
        f"""\
# generated by devstack/opensearch.py; edits are overwritten on each start
cluster.name: aviary-dev
node.name: devstack
discovery.type: single-node
network.host: {H}
http.port: {OPENSEARCH_PORT}
transport.port: {OPENSEARCH_TRANSPORT_PORT}
path.data: {OS_DATA / "data"}
path.logs: {OS_DATA / "logs"}
# dev box: never flip indices to read-only because the disk is fuller than 95%
cluster.routing.allocation.disk.threshold_enabled: false
# one node: new indices default to 1 shard, 0 replicas -> green, not yellow
cluster.default_number_of_replicas: 0
action.auto_create_index: true
""",
    )
    _write(
        OS_CONF / "log4j2.properties",
        """\
# generated by devstack/opensearch.py: console only (captured in .devstack/logs/opensearch.log)
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = error
""",
    )
    _write(
        OS_CONF / "jvm.options",
        "# informational: devstack passes these flags itself (devstack/opensearch.py jvm_flags)\n"
        + "\n".join(jvm_flags())
        + "\n",
    )


def _argv() -> list[str]:
    cp = ":".join(str(j) for j in server_classpath())
    return [
        config.java(),
        *jvm_flags(),
        f"-Dopensearch.path.home={OS_HOME}",
        f"-Dopensearch.path.conf={OS_CONF}",
        "-Dopensearch.distribution.type=tar",
        "-Dopensearch.bundled_jdk=false",
        "-cp",
        cp,
        "org.opensearch.bootstrap.OpenSearch",
    ]


def opensearch_url() -> str:
    return f"http://{H}:{OPENSEARCH_PORT}"


def cluster_health(timeout: float = 2.0) -> dict:
    with urllib.request.urlopen(f"{opensearch_url()}/_cluster/health", timeout=timeout) as r:
        return json.load(r)


def _ready() -> bool:
    return cluster_health().get("status") in ("green", "yellow")


OPENSEARCH = Component(
    name="opensearch",
    argv=_argv,
    port=OPENSEARCH_PORT,
    extra_ports=(OPENSEARCH_TRANSPORT_PORT,),
    prepare=_prepare,
    ready=_ready,
    ready_timeout=120,
    stop_timeout=30,
    tier=0,
    group="backends",
)
