"""Ctrl-C during a call: the statement is canceled on the server, the call
raises KeyboardInterrupt at once, and the session's connection comes back
clean. The tests assert what the server shows right after, not how long it
took: a call that ran its 30 s sleep to the end would leave nothing running
either, so each test also checks that the interrupt arrived while the
statement was running."""

import _thread
import os
import signal
import threading

import pytest

import walrouter
from walrouter import _core
from walrouter.errors import _error

from conftest import PRIMARY, REPLICAS, poll, psql

SLEEP = "SELECT pg_sleep(30)"


def running(pattern="%pg_sleep(30)%"):
    """Statements LIKE pattern running on any node (a read may run on a
    replica), as a superuser connection outside walrouter sees them."""
    sql = ("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%s' AND state = 'active' "
           "AND pid <> pg_backend_pid()" % pattern)
    return sum(int(psql(n, sql)) for n in (PRIMARY, *REPLICAS))


class Interrupter:
    """A thread that waits until the server runs the statement, then calls
    `fire` (from this thread: _thread.interrupt_main or a real SIGINT)."""

    def __init__(self, fire, pattern="%pg_sleep(30)%"):
        self.fired = threading.Event()
        self.failed = None
        self._fire, self._pattern = fire, pattern
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            poll(lambda: running(self._pattern) > 0, "the statement to run on the server", 20)
            self.fired.set()
            self._fire()
        except BaseException as e:  # reported by __exit__; never raised in this thread
            self.failed = e

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._thread.join(30)
        assert self.failed is None, f"the interrupting thread failed: {self.failed!r}"
        assert self.fired.is_set(), "the statement was never seen running"


def send_sigint():
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("fire", [_thread.interrupt_main, send_sigint], ids=["interrupt_main", "os.kill"])
def test_ctrl_c_cancels_the_statement_on_the_server_and_raises_keyboard_interrupt(cluster, fire):
    with cluster.session() as s:
        with Interrupter(fire) as it, pytest.raises(KeyboardInterrupt):
            s.execute(SLEEP)
        assert it.fired.is_set()
        assert running() == 0  # right after: canceled, not finished
        # The connection came back clean: the next statement runs on the same session.
        assert s.query("SELECT 42").scalar() == 42
        assert s.execute("SELECT 1") == 1
        assert not s.in_transaction


def test_ctrl_c_cancels_a_read_and_a_read_on_the_primary(cluster):
    with cluster.session() as s:
        for primary in (False, True):
            with Interrupter(_thread.interrupt_main), pytest.raises(KeyboardInterrupt):
                s.query(SLEEP, primary=primary)
            assert running() == 0
            assert s.query("SELECT 7").scalar() == 7


def test_ctrl_c_inside_a_transaction_rolls_it_back(cluster, table):
    with cluster.session() as s:
        with Interrupter(_thread.interrupt_main), pytest.raises(KeyboardInterrupt):
            with s.transaction():
                s.execute(f"INSERT INTO {table} (v) VALUES ('interrupted')")
                s.execute(SLEEP)
        assert running() == 0
        assert not s.in_transaction
        assert s.query(f"SELECT count(*) FROM {table}", primary=True).scalar() == 0
        with s.transaction():
            s.execute(f"INSERT INTO {table} (v) VALUES ('next')")
        assert s.query(f"SELECT v FROM {table}", primary=True).scalar() == "next"


def test_a_signal_handler_that_raises_cancels_the_statement_and_its_exception_propagates(cluster):
    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm("SIGALRM")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with cluster.session() as s:
            # The alarm goes off while the statement runs (a 30 s sleep);
            # the Interrupter only checks that it was running.
            with Interrupter(lambda: None) as it, pytest.raises(Alarm):
                signal.alarm(1)
                s.query(SLEEP, primary=True)
            assert it.fired.is_set()
            assert running() == 0
            assert s.query("SELECT 1").scalar() == 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_signal_handler_that_returns_lets_the_statement_finish(cluster):
    seen = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: seen.append(signum))
    try:
        with cluster.session() as s:
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            assert s.query("SELECT 5 FROM pg_sleep(0.3)", primary=True).scalar() == 5
        assert seen == [signal.SIGALRM]  # it ran during the call
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_ctrl_c_during_a_stream_closes_it(cluster):
    fetch = "FETCH FORWARD % FROM wr_stream"
    with cluster.session() as s:
        rows = []
        with Interrupter(_thread.interrupt_main, fetch), pytest.raises(KeyboardInterrupt):
            for row in s.stream("SELECT g, pg_sleep(CASE WHEN g = 3 THEN 30 ELSE 0 END) FROM generate_series(1, 5) g",
                                chunk=1, primary=True):
                rows.append(row[0])
        assert rows == [1, 2]
        assert running(fetch) == 0
        assert not s.in_transaction
        assert s.query("SELECT 3").scalar() == 3


def test_calls_on_other_threads_are_not_interrupted(cluster):
    """Python runs signal handlers on the main thread only: a worker's call
    goes on while the main thread takes the KeyboardInterrupt."""
    result, started = [], threading.Event()

    def worker():
        with cluster.session() as s:
            started.set()
            result.append(s.query("SELECT 9 FROM pg_sleep(0.5)", primary=True).scalar())

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    with pytest.raises(KeyboardInterrupt):
        _thread.interrupt_main()
        t.join()  # the main thread takes it here (or right before)
    t.join()
    assert result == [9]


def test_the_gil_is_released_while_a_call_waits(cluster):
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=spin)
    with cluster.session() as s:
        t.start()
        try:
            before = len(ticks)
            s.query("SELECT pg_sleep(0.3)", primary=True)
            during = len(ticks) - before
        finally:
            stop.set()
            t.join()
    assert during > 10


def test_statement_timeout_raises_query_timeout_error_and_the_session_goes_on(dsn, names):
    with walrouter.connect(dsn, statement_timeout_ms=200) as c, c.session() as s:
        with pytest.raises(walrouter.QueryTimeoutError) as e:
            s.execute("SELECT pg_sleep(5)")
        assert e.value.code == "timeout"
        assert isinstance(e.value, walrouter.OperationalError)
        assert not isinstance(e.value, TimeoutError)  # not the builtin
        assert running("%pg_sleep(5)%") == 0
        assert s.execute("SELECT 1") == 1


@pytest.mark.parametrize("status, cls, code", [
    (_core.WR_ERR_TIMEOUT, walrouter.QueryTimeoutError, "timeout"),
    (_core.WR_ERR_SPLIT_BRAIN, walrouter.OperationalError, "split_brain"),
    (_core.WR_ERR_INTERRUPTED, walrouter.QueryInterruptedError, "interrupted"),
])
def test_new_statuses_map_to_operational_errors(status, cls, code):
    err = _error(status, "message")
    assert type(err) is cls
    assert isinstance(err, walrouter.OperationalError)
    assert err.code == code
    assert str(err) == "message"
