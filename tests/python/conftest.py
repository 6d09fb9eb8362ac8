"""Fixtures for the walrouter Python tests: the real cluster of tests/run.sh
(WR_TEST_DSN), lag made with tests/cluster.sh, and helpers that poll instead
of sleeping. Every fixture puts the cluster back the way it found it."""

import itertools
import os
import subprocess
import time
from pathlib import Path

import pytest

import walrouter

CLUSTER_SH = os.environ.get("WR_CLUSTER_SH") or str(Path(__file__).resolve().parents[1] / "cluster.sh")
PRIMARY, REPLICAS = 0, (1, 2)  # node numbers of tests/cluster.sh, in DSN order


def pytest_configure(config):
    if not os.environ.get("WR_TEST_DSN"):
        raise pytest.UsageError(
            "WR_TEST_DSN is not set: run the suite through tests/run.sh, or start a cluster with "
            "`tests/cluster.sh start` and export WR_TEST_DSN=<the URI it prints>")


def cluster_sh(*args: str) -> str:
    """Runs tests/cluster.sh; its stdout, stripped. Fails the test on error."""
    p = subprocess.run([CLUSTER_SH, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"tests/cluster.sh {' '.join(map(str, args))} failed: {p.stderr.strip()}")
    return p.stdout.strip()


def psql(node: int, sql: str) -> str:
    """One SQL statement as superuser on a node, outside walrouter."""
    return cluster_sh("psql", node, sql)


def poll(condition, what: str, timeout: float = 30.0, interval: float = 0.05, detail=None):
    """Waits until condition() is truthy and returns it (a poll, not a
    timing assumption: the timeout only bounds a hung test). detail(), when
    given, says what was seen last if the wait fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f": {detail()}" if detail else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{seen}")
        time.sleep(interval)


def walrouter_backends() -> int:
    """Connections named 'walrouter' on every node."""
    return sum(int(psql(n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'walrouter'"))
               for n in (PRIMARY, *REPLICAS))


@pytest.fixture(scope="session")
def dsn() -> str:
    return os.environ["WR_TEST_DSN"]


@pytest.fixture
def cluster(dsn):
    c = walrouter.connect(dsn)
    yield c
    c.close()


@pytest.fixture
def names(cluster):
    """node number -> "host:port" (as in Result.node)."""
    return cluster.nodes


_tables = itertools.count()


@pytest.fixture
def table(cluster):
    """A fresh table (id serial, v text), dropped afterwards."""
    name = f"wr_py_{os.getpid()}_{next(_tables)}"
    with cluster.session() as s:
        s.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, v text)")
    yield name
    with cluster.session() as s:
        s.execute(f"DROP TABLE IF EXISTS {name}")


class Lag:
    """Makes replication lag with tests/cluster.sh and undoes it afterwards."""

    def __init__(self):
        self.paused = set()
        self.stopped = set()

    def pause(self, *nodes: int) -> None:
        """Pauses replay on the replicas once they have replayed everything
        written so far (tables created by fixtures included)."""
        self.wait_replay(*nodes)
        for n in nodes:
            self.paused.add(n)
            cluster_sh("pause", n)

    def resume(self, *nodes: int) -> None:
        for n in nodes:
            cluster_sh("resume", n)
            self.paused.discard(n)
        self.wait_replay(*nodes)

    def stop_node(self, n: int) -> None:
        self.stopped.add(n)
        cluster_sh("stop-node", n)

    def start_node(self, n: int) -> None:
        cluster_sh("start-node", n)
        self.stopped.discard(n)

    @staticmethod
    def wait_replay(*nodes: int) -> None:
        for n in nodes:
            cluster_sh("wait-replay", n)

    def restore(self) -> None:
        for n in sorted(self.stopped):
            self.start_node(n)
        for n in sorted(self.paused):
            cluster_sh("resume", n)
        self.paused.clear()
        self.wait_replay(*REPLICAS)


@pytest.fixture
def lag():
    lg = Lag()
    yield lg
    lg.restore()
