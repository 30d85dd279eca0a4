"""Checks for the real redis-server helpers the rest of the suite relies on."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis_servers
from redis_servers import CLUSTER_BUS_OFFSET, CLUSTER_SLOTS, RedisCluster, RedisServer, free_port


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as started:
        yield started


def test_free_port_with_bus_leaves_both_ports_bindable() -> None:
    port = free_port(with_bus=True)
    assert port != 6379
    for candidate in (port, port + CLUSTER_BUS_OFFSET):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", candidate))


def test_standalone_ping_flush_and_stop() -> None:
    server = RedisServer()
    with server:
        assert server.port not in (0, 6379)
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        pid = server.pid
        assert pid is not None
        log_path = server.log_path
        assert log_path is not None and log_path.exists()
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
            client.set("k", "v")
            assert client.dbsize() == 1
            server.flush()
            assert client.dbsize() == 0
    assert _pid_gone(pid)
    assert not log_path.parent.exists()
    server.stop()  # idempotent


def test_port_race_retries_with_new_port(monkeypatch: pytest.MonkeyPatch) -> None:
    real_free_port = free_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([taken])

        def rigged(*, with_bus: bool = False) -> int:
            return next(picks, None) or real_free_port(with_bus=with_bus)

        monkeypatch.setattr(redis_servers, "free_port", rigged)
        with RedisServer() as server, _client(server.port) as client:
            assert server.port != taken
            assert client.ping()


def test_cluster_bus_port_race_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    real_free_port = free_port
    port = free_port(with_bus=True)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
        squatter.listen()
        picks = iter([port])

        def rigged(*, with_bus: bool = False) -> int:
            return next(picks, None) or real_free_port(with_bus=with_bus)

        monkeypatch.setattr(redis_servers, "free_port", rigged)
        # A lone cluster node is enough: it binds its bus port at start-up.
        with redis_servers._ClusterNode() as node, _client(node.port) as client:
            assert node.port != port
            assert client.ping()


def test_startup_error_includes_log_tail() -> None:
    server = RedisServer(extra_args=["--no-such-directive", "1"])
    with pytest.raises(RuntimeError, match="log tail") as excinfo:
        server.start()
    assert "no-such-directive" in str(excinfo.value)
    assert server.pid is None and server.log_path is None


def test_cluster_covers_all_slots_with_three_masters(cluster: RedisCluster) -> None:
    assert len(set(cluster.ports)) == 3
    assert cluster.url == f"redis://127.0.0.1:{cluster.ports[0]}/0"
    for port in cluster.ports:
        with _client(port) as client:
            info: dict[str, Any] = client.cluster("info")
            slots: list[list[Any]] = client.cluster("slots")
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == CLUSTER_SLOTS
        assert int(info["cluster_size"]) == 3
        covered = sorted((int(start), int(end)) for start, end, *_ in slots)
        assert sum(end - start + 1 for start, end in covered) == CLUSTER_SLOTS
        assert covered[0][0] == 0 and covered[-1][1] == CLUSTER_SLOTS - 1
        # CLUSTER SLOTS rows are [start, end, master, *replicas]: no replicas expected.
        assert all(len(row) == 3 for row in slots)
        assert {row[2][1] for row in slots} == set(cluster.ports)


def _keys_on_every_node(seed_port: int) -> dict[int, str]:
    """One key per master port, found by asking the server where hash-tagged keys live."""
    with _client(seed_port) as client:
        slots: list[list[Any]] = client.cluster("slots")
        owners = [(int(row[0]), int(row[1]), int(row[2][1])) for row in slots]
        by_port: dict[int, str] = {}
        for i in range(100):
            key = f"{{tag{i}}}:token"
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            port = next(port for start, end, port in owners if start <= slot <= end)
            by_port.setdefault(port, key)
            if len(by_port) == 3:
                return by_port
    raise AssertionError(f"hash tags reached only {sorted(by_port)}")


def test_cluster_client_and_flush(cluster: RedisCluster) -> None:
    keys = _keys_on_every_node(cluster.ports[0])
    assert set(keys) == set(cluster.ports)
    with redis.RedisCluster.from_url(cluster.url, decode_responses=True) as client:
        for port, key in keys.items():
            client.set(key, str(port))
        for port, key in keys.items():
            assert client.get(key) == str(port)
    for port, key in keys.items():
        with _client(port) as node:
            assert node.dbsize() == 1
            assert node.get(key) == str(port)

    cluster.flush()
    for port in cluster.ports:
        with _client(port) as node:
            assert node.dbsize() == 0


def test_cluster_stop_leaves_no_process() -> None:
    started = RedisCluster()
    started.start()
    pids = [pid for pid in started.pids if pid is not None]
    assert len(pids) == 3
    # redis-server chdirs into its --dir, so /proc shows each node's temp dir.
    dirs = [Path(os.readlink(f"/proc/{pid}/cwd")) for pid in pids]
    started.stop()
    assert all(_pid_gone(pid) for pid in pids)
    assert not any(d.exists() for d in dirs)
    started.stop()  # idempotent
