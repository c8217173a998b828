"""A throw-away Redis Cluster: several ``redis-server --cluster-enabled yes`` on spare loopback ports."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0
BUS_PORT_OFFSET = 10000  # Redis Cluster's node-to-node bus listens on port + 10000


@dataclass(frozen=True)
class RedisClusterNodes:
    ports: tuple[int, ...]

    @property
    def url(self) -> str:
        """One node: cluster clients discover the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}"


@contextlib.contextmanager
def redis_cluster(directory: Path, nodes: int = 3) -> Iterator[RedisClusterNodes]:
    """Start *nodes* masters that share the 16384 slots; wait for ``cluster_state:ok``; stop them afterwards."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"`{tool}` is not on PATH; the Redis Cluster tests need Redis >= 7")
    ports = _spare_ports(nodes)
    processes = [_start_node(directory, port) for port in ports]
    try:
        for port in ports:
            _wait_until(lambda port=port: _cli(port, "PING") == "PONG", f"redis-server on port {port} to answer")
        addresses = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
        )
        for port in ports:
            _wait_until(lambda port=port: "cluster_state:ok" in _cli(port, "CLUSTER", "INFO"), "cluster_state:ok")
        yield RedisClusterNodes(tuple(ports))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start_node(directory: Path, port: int) -> subprocess.Popen[bytes]:
    node_dir = directory / str(port)
    node_dir.mkdir(parents=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
    argv += ["--cluster-config-file", "nodes.conf", "--dir", str(node_dir), "--save", "", "--appendonly", "no"]
    argv += ["--logfile", str(node_dir / "redis.log")]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _spare_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20000, 29000)
        if port not in ports and _free(port) and _free(port + BUS_PORT_OFFSET):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cli(port: int, *command: str) -> str:
    result = subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=5)
    return result.stdout.strip()


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll an outside process that offers no notification, up to START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {START_TIMEOUT}s waiting for {what}")
        time.sleep(0.05)
