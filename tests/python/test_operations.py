"""Operations from Python: JSON status, Prometheus metrics, node events
delivered on the caller's thread, and the background refresher."""

import json
import re
import sys
import threading

import pytest

import walrouter
from conftest import poll

FIELDS = {"node", "name", "host", "port", "role", "state", "lag_bytes", "lag_seconds", "replay_lsn",
          "replay_rate", "last_check_unix_ms", "conns_in_use", "conns_idle", "last_error", "served", "errors"}
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$')


def test_status_json_holds_every_field_of_every_node(cluster):
    with cluster.session() as s:
        s.query("SELECT 1")
    nodes = json.loads(cluster.status_json())
    assert [n["role"] for n in nodes] == ["primary", "replica", "replica"]
    for n in nodes:
        assert FIELDS <= set(n), FIELDS - set(n)
        assert n["state"] in ("up", "streaming", "catching_up", "lagging", "down")
        assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", n["replay_lsn"])
        assert "replica_cached" in n["served"] and "write" in n["served"]
    assert "walrouter-secret" not in cluster.status_json()


def test_metrics_are_valid_prometheus_text(cluster):
    with cluster.session() as s:
        s.query("SELECT 1")
    text = cluster.metrics()
    names = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), line
        names.add(line.split("{")[0])
    assert {"walrouter_statements_total", "walrouter_node_up", "walrouter_replica_lag_bytes",
            "walrouter_replica_lag_seconds", "walrouter_connections", "walrouter_errors_total"} <= names
    assert re.search(r'^walrouter_node_up\{node="[^"]+",role="primary"\} 1$', text, re.M)


def test_events_report_a_stopped_replica_and_its_return_to_the_handler(cluster, names, lag):
    seen, threads = [], set()
    cluster.events()  # the opening's own changes

    def handler(e):
        threads.add(threading.get_ident())
        seen.append(e)

    cluster.on_event(handler)

    def read_once():
        with cluster.session() as s:
            s.query("SELECT 1")
        return True

    lag.stop_node(2)
    poll(lambda: read_once() and any(e.node == names[2] and e.to_state == "down" for e in seen),
         "a 'down' event for replica 2")
    down = [e for e in seen if e.node == names[2] and e.to_state == "down"]
    assert len(down) == 1 and isinstance(down[0], walrouter.Event)
    lag.start_node(2)
    poll(lambda: read_once() and any(e.node == names[2] and e.from_state == "down" for e in seen),
         "replica 2 coming back")
    assert cluster.events() == []  # delivered to the handler, not queued twice
    assert threads == {threading.get_ident()}  # on the caller's thread, never a C thread
    cluster.on_event(None)


def test_a_raising_handler_gets_every_event_and_the_call_still_returns(cluster, names, lag, monkeypatch):
    cluster.events()
    lag.stop_node(1)
    lag.stop_node(2)
    # No handler yet: the changes wait in the queue (status() refreshes).
    poll(lambda: all(n.state == "down" for n in cluster.status()[1:]), "both replicas down")
    served = sum(cluster.status()[0].served.values())
    seen = []

    def handler(e):
        seen.append(e)
        raise RuntimeError("handler failed")

    cluster.on_event(handler)
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    with cluster.session() as s:
        assert s.query("SELECT 1 AS one").rows == [(1,)]  # the call's result is kept
    cluster.on_event(None)
    assert len(reported) == len(seen) and all(str(r.exc_value) == "handler failed" for r in reported)
    assert {(e.node, e.to_state) for e in seen} >= {(names[1], "down"), (names[2], "down")}
    assert sum(cluster.status()[0].served.values()) == served + 1  # the primary served the read


def test_the_refresher_notices_a_stopped_node_without_any_reads(cluster, names, lag):
    cluster.events()
    cluster.start_refresher(0.05)
    lag.stop_node(1)
    poll(lambda: any(e.node == names[1] and e.to_state == "down" for e in cluster.events()),
         "the refresher's 'down' event for replica 1")
    cluster.stop_refresher()
    cluster.stop_refresher()  # idempotent


def test_closing_a_cluster_with_a_running_refresher_is_clean(dsn):
    c = walrouter.connect(dsn)
    c.start_refresher(0.01)
    c.start_refresher(0.02)  # a new interval
    c.close()
    with pytest.raises(walrouter.InterfaceError):
        c.metrics()


def test_operations_misuse_raises_clear_errors(cluster):
    with pytest.raises(walrouter.ProgrammingError):
        cluster.on_event(42)
    with pytest.raises(walrouter.ProgrammingError):
        cluster.start_refresher(0)
