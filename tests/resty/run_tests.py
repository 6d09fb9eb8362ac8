#!/usr/bin/env python3
"""resty.walrouter suite: starts a real nginx (Debian's, with lua-nginx-module)
against the test cluster and drives it over HTTP.

  run_tests.py GROUP [--engine-lib PATH] [--port N]

GROUP: basic | faults | nonblocking | shared | token. Needs WR_TEST_DSN (the
cluster's multi-host URI) and WR_CLUSTER_SH (tests/cluster.sh) as set by
tests/run.sh. Exits 0 on success; prints each check."""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(TOP, "tests", "resty")
PYTHONPATH = ""
MD5_USER, MD5_PASS = "wr_resty_md5", "md5-secret"
RUN = "%d-%d" % (os.getpid(), time.time() * 1000)  # marks this run's rows


def log(*a):
    print(*a, flush=True)


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)
    log("ok -", what)


def poll(fn, what, timeout=30.0, every=0.05):
    """Polls fn until it returns a true value; returns it."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail("timed out waiting for " + what)
        time.sleep(every)


# ---- the cluster ---------------------------------------------------------------------

class Cluster:
    def __init__(self, dsn=None, env=None):
        self.sh = os.environ.get("WR_CLUSTER_SH") or os.path.join(TOP, "tests", "cluster.sh")
        self.env = dict(os.environ, **(env or {}))
        self.dsn = dsn or os.environ["WR_TEST_DSN"]
        m = re.match(r"postgresql://[^@]*@([^/]*)/", self.dsn)
        self.names = m.group(1).split(",")

    def run(self, *args, check_rc=True):
        r = subprocess.run([self.sh, *map(str, args)], capture_output=True, text=True, timeout=180, env=self.env)
        if check_rc and r.returncode != 0:
            raise Fail("cluster.sh %s failed: %s" % (" ".join(map(str, args)), r.stderr.strip()[-400:]))
        return r.stdout.strip()

    def primary(self):
        return int(self.run("primary"))

    def sql(self, node, q):
        return self.run("psql", node, q)


# ---- nginx ---------------------------------------------------------------------------

class Nginx:
    def __init__(self, port, workers, engine_lib, dsn):
        self.port = port
        self.prefix = "/tmp/wr-resty-nginx-%d" % port
        self.workers = workers
        self.engine_lib = engine_lib
        self.dsn = dsn
        self.jitv = False

    def stop_leftover(self):
        pidfile = os.path.join(self.prefix, "nginx.pid")
        try:
            pid = int(open(pidfile).read().strip())
            cmd = open("/proc/%d/cmdline" % pid, "rb").read().decode(errors="replace")
        except (OSError, ValueError):
            return
        if "nginx" in cmd and self.prefix in cmd:  # ours, from an interrupted run
            os.kill(pid, signal.SIGTERM)
            poll(lambda: not os.path.exists("/proc/%d" % pid), "leftover nginx to exit", 10)

    def start(self):
        self.stop_leftover()
        subprocess.run(["rm", "-rf", self.prefix], check=True)
        os.makedirs(self.prefix)
        os.chmod(self.prefix, 0o755)
        bad = re.sub(r"(://[^:]*:)[^@]*@", r"\1wrong-password@", self.dsn)
        m = re.match(r"(postgresql://[^@]*@)([^/]*)(/.*)$", self.dsn)
        bench = m.group(1) + ",".join(m.group(2).split(",")[:2]) + m.group(3)
        md5 = "postgresql://%s:%s@%s%s" % (MD5_USER, MD5_PASS, m.group(2), m.group(3))
        conf = open(os.path.join(HERE, "nginx.conf.in")).read()
        for k, v in {"@USER@": "user root root;" if os.geteuid() == 0 else "",
                     "@WORKERS@": str(self.workers), "@PREFIX@": self.prefix, "@TOP@": TOP,
                     "@ENGINE_LIB@": self.engine_lib, "@DSN@": self.dsn, "@BAD_DSN@": bad, "@BENCH_DSN@": bench, "@MD5_DSN@": md5,
                     "@PORT@": str(self.port)}.items():
            conf = conf.replace(k, v)
        path = os.path.join(self.prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        env = dict(os.environ)
        env.pop("WR_JITV", None)
        if self.jitv:
            env["WR_JITV"] = "1"
        r = subprocess.run(["nginx", "-p", self.prefix, "-c", path, "-e", os.path.join(self.prefix, "error.log")],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise Fail("nginx failed to start: " + r.stderr + self.errors())
        poll(lambda: self.try_get("/ping"), "nginx to answer", 15)

    def try_get(self, path):
        try:
            return get(self.port, path)
        except OSError:
            return None

    def errors(self):
        try:
            return open(os.path.join(self.prefix, "error.log")).read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        pidfile = os.path.join(self.prefix, "nginx.pid")
        try:
            pid = int(open(pidfile).read().strip())
        except (OSError, ValueError):
            return
        os.kill(pid, signal.SIGTERM)
        try:
            poll(lambda: not os.path.exists("/proc/%d" % pid), "nginx to exit", 10)
        except Fail:
            os.kill(pid, signal.SIGKILL)


def get(port, path, headers=None, conn=None, timeout=60):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read().decode()
    if conn is None:
        c.close()
    return r.status, body


def q(port, sql, mode="query", token=None, cluster="main", params=(), conn=None, **extra):
    args = [("sql", sql), ("mode", mode), ("cluster", cluster)] + [("p", str(p)) for p in params]
    args += list(extra.items())
    hdr = {"X-WR-Token": token} if token else {}
    status, body = get(port, "/q?" + urllib.parse.urlencode(args), hdr, conn)
    if status != 200:
        raise Fail("HTTP %d: %s" % (status, body[:300]))
    return json.loads(body)


# ---- the groups ----------------------------------------------------------------------

def cleanup(cl):
    """Leftovers of an interrupted run: frozen, paused or stopped nodes."""
    status = cl.run("status", check_rc=False)
    for n in (0, 1, 2):
        line = next((l for l in status.splitlines() if l.startswith("node%d " % n)), "")
        if "frozen" in line:
            cl.run("thaw", n, check_rc=False)
        if "stopped" in line:
            cl.run("start-node", n, check_rc=False)
        if n and "in_recovery=true" in line:
            cl.run("resume", n, check_rc=False)


def node_name(cl, i):
    return cl.names[i]


def setup_table(port):
    r = q(port, "CREATE TABLE IF NOT EXISTS wr_resty_t (id serial PRIMARY KEY, v text)", "exec")
    check("err" not in r, "a table is created through nginx (%s)" % r.get("err"))


def wait_replay(cl):
    for n in (1, 2):
        cl.run("wait-replay", n)


def setup_md5(cl):
    cdir = os.environ.get("WR_CLUSTER_DIR", "/tmp/walrouter-cluster")
    line = "host all %s 127.0.0.1/32 md5\n" % MD5_USER
    for n in (0, 1, 2):
        path = os.path.join(cdir, "node%d" % n, "pg_hba.conf")
        text = open(path).read()
        if line not in text:
            with open(path, "w") as f:
                f.write(line + text)
        cl.sql(n, "SELECT pg_reload_conf()")
    # Kept across runs (connections from an earlier login may be pooled).
    cl.sql(cl.primary(), "SET password_encryption = 'md5'; "
                         "DO $$ BEGIN CREATE ROLE %s LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; "
                         "ALTER ROLE %s PASSWORD '%s'" % (MD5_USER, MD5_USER, MD5_PASS))
    out = cl.sql(cl.primary(), "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '%s'" % MD5_USER)
    check(out.strip() == "md5", "the md5 role's password is stored as md5")
    for n in (1, 2):
        cl.run("wait-replay", n)
    # pg_reload_conf() only signals the postmaster: poll until every node
    # takes the md5 login (until then the scram line in front may still apply).
    db = re.match(r"postgresql://[^/]*/([^?]*)", cl.dsn).group(1)
    env = dict(os.environ, PGPASSWORD=MD5_PASS, PGCONNECT_TIMEOUT="5")
    for name in cl.names:
        host, port = name.rsplit(":", 1)
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run(["psql", "-X", "-q", "-h", host, "-p", port, "-U", MD5_USER, "-d", db,
                                "-c", "SELECT 1"], capture_output=True, text=True, env=env)
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)


def group_basic(cl, ng):
    port = ng.port
    st, body = get(port, "/unit")
    check(body.startswith("ok "), "unit checks in nginx: SCRAM-SHA-256 (RFC 7677), DSNs, parameters (%s)" % body.strip())
    setup_table(port)
    p = cl.primary()
    r = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1) RETURNING id", "exec", params=["w1"])
    check(r.get("node") == node_name(cl, p) and r.get("reason") == "write",
          "a write goes to the primary (%s, %s)" % (r.get("node"), r.get("reason")))
    check(r["rows"][0][0] > 0 and r.get("affected") == 1, "the write returns its row and count")
    # Read-your-writes with replay paused on both replicas.
    for n in (1, 2):
        cl.run("pause", n)
    try:
        w = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1)", "exec", params=["paused-" + RUN])
        tok = w["token"]
        check(tok.startswith("2."), "a write returns a version 2 token")
        r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=tok, params=["paused-" + RUN])
        check(r.get("rows") == [[1]], "read-your-writes through the token with replay paused (%s)" % r)
        check(r["reason"] in ("primary_budget", "primary_lagging") and r["node"] == node_name(cl, p),
              "the read fell back to the primary beyond the budget (%s)" % r["reason"])
        r = q(port, "SELECT 1")
        check(r.get("rows") == [[1]], "a read with no token still works with replay paused (%s)" % r.get("reason"))
    finally:
        for n in (1, 2):
            cl.run("resume", n)
    wait_replay(cl)

    def fresh_read():
        r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=tok, params=["paused-" + RUN])
        return r if r.get("rows") == [[1]] and r["reason"].startswith("replica") else None
    r = poll(fresh_read, "a replica read once replay caught up")
    check(r["node"] in (node_name(cl, 1), node_name(cl, 2)),
          "reads go to a replica once it is fresh (%s, %s)" % (r["node"], r["reason"]))
    # Errors carry their SQLSTATE.
    r = q(port, "SELECT 1/0")
    check(r.get("code") == "sql_error" and r.get("sqlstate") == "22012", "a read error has its SQLSTATE (%s)" % r)
    r = q(port, "INSERT INTO wr_resty_missing VALUES (1)", "exec")
    check(r.get("code") == "sql_error" and r.get("sqlstate") == "42P01", "a write error has its SQLSTATE (%s)" % r)
    r = q(port, "BEGIN")
    check(r.get("code") == "bad_argument", "transaction control statements are refused")
    # A failed login is an error, with the server's SQLSTATE.
    r = q(port, "SELECT 1", cluster="badauth")
    check(r.get("code") in ("connect_error", "no_primary") and r.get("sqlstate") == "28P01",
          "a wrong password fails with SQLSTATE 28P01 (%s)" % r)
    check("wrong-password" not in json.dumps(r), "the error does not show the password")
    # The statement cache: a cached SELECT * whose table changed shape is
    # parsed again, not failed.
    q(port, "DROP TABLE IF EXISTS wr_resty_s", "exec")
    q(port, "CREATE TABLE wr_resty_s (a int)", "exec")
    q(port, "INSERT INTO wr_resty_s VALUES (1)", "exec")
    for _ in range(3):
        r = q(port, "SELECT * FROM wr_resty_s", "primary")
    check(r.get("rows") == [[1]], "a cached statement runs again (%s)" % r.get("err"))
    q(port, "ALTER TABLE wr_resty_s ADD COLUMN b int DEFAULT 2", "exec")
    r = q(port, "SELECT * FROM wr_resty_s", "primary")
    check(r.get("rows") == [[1, 2]], "a cached statement whose table changed shape runs again (%s)" % r)
    # md5 authentication: a role whose password is stored as md5, allowed by
    # an md5 line in front of every node's pg_hba.conf. The "md5" cluster's
    # prober has tried to log in since nginx started, before the role
    # existed: its nodes are in their login backoff (up to 5 s, plus jitter),
    # so a read fails fast with the last error until a probe gets through.
    setup_md5(cl)
    deadline = time.monotonic() + 20
    while True:
        r = q(port, "SELECT current_user", "primary", cluster="md5")
        if r.get("rows") == [[MD5_USER]] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(r.get("rows") == [[MD5_USER]], "md5 authentication logs in (%s)" % (r.get("err") or r.get("node")))
    # Transactions.
    r = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1) RETURNING id", "tx", params=["tx-" + RUN])
    check(r.get("reason") == "transaction" and r.get("node") == node_name(cl, p), "a transaction runs on the primary")
    r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", "tx_ro", token=r["token"], params=["tx-" + RUN])
    check(r.get("rows") == [[1]], "a read-only transaction sees the session's commit (%s)" % r.get("node"))
    # A malformed token is refused.
    r = q(port, "SELECT 1", token="2.zz")
    check(r.get("code") == "bad_token", "a malformed token is refused")
    # Status and metrics.
    st, body = get(port, "/status")
    s = json.loads(body)
    check(st == 200 and [n["name"] for n in s["nodes"]] == cl.names and s["nodes"][p]["role"] == "primary",
          "status serves JSON, one record per node")
    st, body = get(port, "/metrics")
    check(st == 200 and "walrouter_" in body and 'reason="write"' in body, "metrics serve Prometheus text")


def group_faults(cl, ng):
    port = ng.port
    setup_table(port)
    p = cl.primary()
    reps = [n for n in (0, 1, 2) if n != p]
    # A frozen replica never stalls an unrelated request, and costs a read its budget.
    w = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1)", "exec", params=["frozen-" + RUN])
    for n in reps:
        cl.run("freeze", n)
    try:
        done = []
        lock = threading.Lock()

        def read():
            r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=w["token"], params=["frozen-" + RUN])
            with lock:
                done.append(("read", r))

        t = threading.Thread(target=read)
        t.start()
        time.sleep(0.05)  # let the read reach nginx first (order is asserted below, not time)
        st, body = get(port, "/ping")
        with lock:
            done.append(("ping", body))
        t.join(60)
        check([d[0] for d in done] == ["ping", "read"], "a request doing no database work completes "
              "while a read waits on frozen replicas")
        r = done[1][1]
        check(r.get("rows") == [[1]] and r.get("node") == node_name(cl, p),
              "the read falls back to the primary (%s, %s)" % (r.get("node"), r.get("reason") or r.get("err")))
        r = q(port, "INSERT INTO wr_resty_t (v) VALUES ('during-freeze')", "exec")
        check(r.get("node") == node_name(cl, p), "writes go on while replicas are frozen")
    finally:
        for n in reps:
            cl.run("thaw", n)
    # A node down: reads still succeed, never from it.
    down = reps[0]
    cl.run("stop-node", down)
    try:
        names = set()
        for _ in range(10):
            r = q(port, "SELECT 1")
            check(r.get("rows") == [[1]], "a read succeeds with a node down (%s)" % r.get("node")) if not names else None
            if r.get("rows") != [[1]]:
                raise Fail("read failed with a node down: %s" % r)
            names.add(r["node"])
        check(node_name(cl, down) not in names, "the stopped node serves nothing (%s)" % sorted(names))
        st, body = get(port, "/status")
        def down_reported():
            st, body = get(port, "/status")
            return '"down"' in body
        poll(down_reported, "status to report the node down")
        check(True, "status reports the stopped node down")
    finally:
        cl.run("start-node", down)


def group_nonblocking(cl, ng):
    port = ng.port
    n = 20
    order = []
    lock = threading.Lock()

    def sleeper(k):
        r = q(port, "SELECT pg_sleep(0.5), %d" % k, "primary")
        with lock:
            order.append(("sleep", r.get("err")))

    ts = [threading.Thread(target=sleeper, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    # The worker answers /inflight (no database work) while the statements
    # wait on the database: all of them are inside the handler.
    poll(lambda: int(get(port, "/inflight")[1]) == n, "all %d statements in flight" % n, 30, 0.005)
    with lock:
        early = len(order)
    st, body = get(port, "/ping")
    with lock:
        order.append(("ping", None))
    for t in ts:
        t.join(60)
    check(early == 0, "no statement finished before all %d were in flight" % n)
    kinds = [o[0] for o in order]
    check(kinds.index("ping") < kinds.index("sleep"),
          "with one worker and %d statements in pg_sleep(0.5), a request with no database work "
          "completes before all of them" % n)
    check(all(o[1] is None for o in order if o[0] == "sleep") and len(order) == n + 1, "every sleep completed")


def group_shared(cl, ng):
    port = ng.port
    setup_table(port)
    # Two HTTP keep-alive connections held by two different workers.
    conns = {}
    for _ in range(40):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        st, body = get(port, "/ping", conn=c)
        pid = body.split()[1]
        if pid not in conns:
            conns[pid] = c
        else:
            c.close()
        if len(conns) == 2:
            break
    check(len(conns) == 2, "two workers answer")
    (pa, ca), (pb, cb) = list(conns.items())
    p = cl.primary()
    # A position learnt by one worker is known to the other. The 'still'
    # cluster probes once at start, never again.
    def engine(c):
        st, body = get(port, "/engine?cluster=still", conn=c)
        return json.loads(body)
    poll(lambda: int(engine(cb)["nodes"][p]["lsn"]) > 0, "the first probe round")
    before = int(engine(cb)["nodes"][p]["lsn"])
    r = q(port, "INSERT INTO wr_resty_t (v) VALUES ('shared') RETURNING id", "exec", cluster="still", conn=ca)
    check(r["pid"] == int(pa) and r.get("node") == node_name(cl, p), "worker A wrote on the primary")
    e = engine(cb)
    check(e["pid"] == int(pb) and int(e["nodes"][p]["lsn"]) > before,
          "worker B knows the primary position worker A observed (%d > %d)" % (int(e["nodes"][p]["lsn"]), before))
    # One prober for all workers.
    time.sleep(0)
    def probed():
        st, body = get(port, "/status")
        s = json.loads(body)["prober"]
        return s if sum(s["rounds"].values()) >= 5 else None
    s = poll(probed, "several probe rounds", 30, 0.1)
    check(len(s["rounds"]) == 1 and str(s["pid"]) in s["rounds"],
          "one worker probes for all (%s, lease %s)" % (s["rounds"], s["pid"]))
    for c in (ca, cb):
        c.close()


def group_token(cl, ng):
    port = ng.port
    setup_table(port)
    sys.path.insert(0, PYTHONPATH)
    import walrouter  # the project's Python package, from the build
    cluster = walrouter.connect(cl.dsn)
    p = cl.primary()
    for n in (1, 2):
        cl.run("pause", n)
    try:
        with cluster.session() as s:
            s.execute("INSERT INTO wr_resty_t (v) VALUES ('py-%s')" % RUN)
            tok = s.token
        r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=tok, params=["py-" + RUN])
        check(r.get("rows") == [[1]] and r["node"] == node_name(cl, p),
              "a write through Python, then a read through nginx with its token, sees the row (%s)" % r.get("reason"))
        w = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1)", "exec", params=["ngx-" + RUN])
        with cluster.session(token=w["token"]) as s:
            rows = s.query("SELECT count(*) FROM wr_resty_t WHERE v = 'ngx-%s'" % RUN)
            check(rows[0][0] == 1, "a write through nginx, then a read through Python with its token, sees the row")
        # Signed tokens: the same key on both sides; another key is refused.
        signed = walrouter.connect(cl.dsn, token_key="resty-token-key")
        try:
            with signed.session() as s:
                s.execute("INSERT INTO wr_resty_t (v) VALUES ('pysigned-%s')" % RUN)
                tok = s.token
            r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=tok, cluster="signed",
                  params=["pysigned-" + RUN])
            check(r.get("rows") == [[1]], "a token signed by Python is honoured by nginx with the same key")
            r = q(port, "SELECT 1", token=tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"), cluster="signed")
            check(r.get("code") == "bad_token", "a tampered signed token is refused")
            r = q(port, "SELECT 1", token=tok.rsplit(".", 1)[0], cluster="signed")
            check(r.get("code") == "bad_token", "an unsigned token is refused where a key is set")
            w = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1)", "exec", cluster="signed", params=["ngxsigned-" + RUN])
            with signed.session(token=w["token"]) as s:
                rows = s.query("SELECT count(*) FROM wr_resty_t WHERE v = 'ngxsigned-%s'" % RUN)
                check(rows[0][0] == 1, "a token signed by nginx is honoured by Python with the same key")
        finally:
            signed.close()
    finally:
        for n in (1, 2):
            cl.run("resume", n)
        cluster.close()


def group_jit(cl, ng):
    """The hot path is compiled: replica reads, writes and reads with a
    token under load leave no trace aborted for a construct LuaJIT cannot
    compile (NYI) in the module's files (jit.v's log). Port: the bench's
    (bench.py is not run by ctest)."""
    port = ng.port
    setup_table(port)
    tok = None
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(4)]

    def work(c, k):
        for j in range(150):
            q(port, "SELECT 1", conn=c)
            if j % 10 == 0:
                w = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1)", "exec", params=["jit-%d-%d" % (k, j)], conn=c)
                q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=w["token"],
                  params=["jit-%d-%d" % (k, j)], conn=c)
    ts = [threading.Thread(target=work, args=(c, k)) for k, c in enumerate(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    for c in conns:
        c.close()
    log_text = open(os.path.join(ng.prefix, "jitv.log")).read()
    mine = [l for l in log_text.splitlines() if re.search(r"resty/walrouter|walrouter\.lua|/pg\.lua|/shared\.lua", l)
            or re.search(r"\b(walrouter|pg|shared|auth|dsn)\.lua:", l)]
    compiled = [l for l in mine if l.startswith("[TRACE") and "---" not in l]
    # "return to lower frame" is where a trace stitched after a cosocket call
    # (a C function that yields) returns past its start: structural, not a
    # construct of the module.
    nyi = [l for l in mine if "NYI" in l and "return to lower frame" not in l]
    check(len(compiled) > 10, "the module's code is compiled (%d traces)" % len(compiled))
    check(not nyi, "no trace of the module aborts on a construct LuaJIT cannot compile (bytecode, "
          "C type, struct by value): %s" % nyi[:5])


# The fenced group runs on a cluster of its own (a promotion changes the
# topology), on ports of the suite's block.
FENCE_ENV = {"WR_CLUSTER_DIR": "/tmp/wr-resty-fence-cluster", "WR_BASE_PORT": "25505"}


def group_fenced(cl, ng):
    port = ng.port
    setup_table(port)
    w = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1)", "exec", params=["before-" + RUN])
    check(w.get("node") == node_name(cl, 0), "node 0 is the primary")
    cl.run("wait-replay", 1)
    cl.run("freeze", 0)
    try:
        cl.run("promote", 1)
    finally:
        cl.run("thaw", 0)
    check(cl.sql(0, "SELECT pg_is_in_recovery()") == "f", "the old primary runs on, as a primary")

    def fenced():
        nodes = json.loads(get(port, "/status")[1])["nodes"]
        return nodes if nodes[0]["state"] == "fenced" and nodes[1]["role"] == "primary" else None
    nodes = poll(fenced, "node 0 to be fenced and node 1 elected", 60, 0.1)
    check(nodes[0]["fenced"] and nodes[0]["timeline"] < nodes[1]["timeline"],
          "the old primary is fenced (timeline %s < %s)" % (nodes[0]["timeline"], nodes[1]["timeline"]))
    served = set()
    for k in range(20):
        r = q(port, "INSERT INTO wr_resty_t (v) VALUES ($1)", "exec", params=["after-%d-%s" % (k, RUN)])
        if "err" in r:
            raise Fail("a write after the promotion failed: %s" % r)
        served.add(r["node"])
        r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=r["token"],
              params=["after-%d-%s" % (k, RUN)])
        if r.get("rows") != [[1]]:
            raise Fail("a read after the promotion missed its write: %s" % r)
        served.add(r["node"])
    check(node_name(cl, 0) not in served, "no write or read goes to the fenced node (%s)" % sorted(served))
    r = q(port, "SELECT count(*) FROM wr_resty_t WHERE v = $1", token=w["token"], params=["before-" + RUN])
    check(r.get("rows") == [[1]] and r["node"] != node_name(cl, 0),
          "a token from before the promotion is honoured on the new timeline")


GROUPS = {"basic": (group_basic, 1), "faults": (group_faults, 1), "nonblocking": (group_nonblocking, 1),
          "shared": (group_shared, 2), "token": (group_token, 1),
          "fenced": (group_fenced, 1), "jit": (group_jit, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("group", choices=sorted(GROUPS))
    ap.add_argument("--engine-lib", default=os.environ.get("WALROUTER_ENGINE_LIB", ""))
    ap.add_argument("--port", type=int, default=25500)
    ap.add_argument("--pythonpath", default="", help="<build>/python, for the token group")
    a = ap.parse_args()
    global PYTHONPATH
    PYTHONPATH = a.pythonpath or os.path.join(TOP, "build", "python")
    if not os.environ.get("WR_TEST_DSN"):
        log("WR_TEST_DSN is not set (run through tests/run.sh): skipped")
        return 77
    fn, workers = GROUPS[a.group]
    own = None
    if a.group == "fenced":
        own = Cluster(os.environ["WR_TEST_DSN"], FENCE_ENV)
        dsn = own.run("start").splitlines()[-1]
        cl = Cluster(dsn, FENCE_ENV)
    else:
        cl = Cluster()
        cleanup(cl)
    ng = Nginx(a.port, workers, a.engine_lib, cl.dsn)
    ng.jitv = a.group == "jit"
    try:
        ng.start()
        fn(cl, ng)
    except Fail as e:
        log("FAIL -", e)
        log(ng.errors())
        return 1
    finally:
        ng.stop()
        if own:
            own.run("stop", check_rc=False)
    log("all %s checks passed" % a.group)
    return 0


if __name__ == "__main__":
    sys.exit(main())
