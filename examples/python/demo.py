#!/usr/bin/python3
"""demo.py — walrouter from Python in one screen: reads on replicas, reading
your own write while the replicas' replay is paused (the fallback to the
primary, with the node that served each read), a session resumed from its
token, a transaction, and the cluster's status.

    /usr/bin/python3 examples/python/demo.py DSN   (or WR_DSN; WR_CLUSTER_SH,
                                                    when set, pauses and
                                                    resumes replay for real)
"""

import os
import subprocess
import sys

import walrouter

CLUSTER_SH = os.environ.get("WR_CLUSTER_SH")


def stage(what, *commands):
    """Runs the cluster.sh commands of a stage, then says what happened: the
    stage's narrative only when every command ran."""
    done = CLUSTER_SH is not None
    for cmd in commands if CLUSTER_SH else ():
        if subprocess.run([CLUSTER_SH, *cmd.split()], capture_output=True).returncode != 0:
            print(f"(could not run: {CLUSTER_SH} {cmd})", file=sys.stderr)
            done = False
    if done:
        print(f"\n-- {what}")
    else:
        why = "a cluster.sh command failed" if CLUSTER_SH else "WR_CLUSTER_SH is not set"
        print(f"\n-- (not done, {why}: {what})")


def show(label, r):
    first = f"{r.columns[0]}={r[0][0]!r}" if r.columns and len(r) else ""
    print(f"{label:<42} -> {r.node:<16} {r.reason:<16} {first}")


def main():
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WR_DSN")
    if not dsn:
        sys.exit("usage: demo.py DSN   (or set WR_DSN)")
    with walrouter.connect(dsn, read_budget_ms=200) as cluster:
        print(cluster)
        with cluster.session() as setup:
            setup.execute("CREATE TABLE IF NOT EXISTS demo_py_notes (id serial PRIMARY KEY, who text, note text)")
            setup.execute("TRUNCATE demo_py_notes")
        stage("replicas caught up: reads go to a replica", "wait-replay 1", "wait-replay 2")

        alice, bob = cluster.session(), cluster.session()
        count = "SELECT count(*) AS notes FROM demo_py_notes WHERE who = $1"
        show("alice: SELECT count(*)", alice.query(count, "alice"))
        show("bob:   SELECT count(*)", bob.query(count, "alice"))

        try:
            stage("replay paused on both replicas: they fall behind", "pause 1", "pause 2")
            r = alice.write("INSERT INTO demo_py_notes (who, note) VALUES ($1, $2) RETURNING id",
                            "alice", "hello from the primary")
            show(f"alice: INSERT ({r.affected} row, commit {r.lsn})", r)
            show("alice reads her write (falls back)", alice.query(count, "alice"))
            show("bob has no such need: stale replica ok", bob.query(count, "alice"))

            token = alice.token
            print(f"alice's token, e.g. for a cookie: {token}")
            with cluster.session(token=token) as next_request:  # alice's next request
                show("a session resumed from the token", next_request.query(count, "alice"))
        finally:
            stage("replay resumed: once a replica has caught up, it serves alice again",
                  "resume 1", "resume 2", "wait-replay 1", "wait-replay 2")
        show("alice: SELECT count(*)", alice.query(count, "alice"))

        print("\n-- a transaction: one node from BEGIN to COMMIT, rolled back on an exception")
        with alice.transaction():
            alice.execute("INSERT INTO demo_py_notes (who, note) VALUES ('alice', 'in a transaction')")
            show("inside the transaction", alice.query("SELECT count(*) AS notes FROM demo_py_notes"))
        try:
            with alice.transaction():
                alice.execute("INSERT INTO demo_py_notes (who, note) VALUES ('alice', 'never')")
                alice.execute("INSERT INTO demo_py_notes (id, who) VALUES (1, 'duplicate id')")
        except walrouter.IntegrityError as e:
            print(f"rolled back: {type(e).__name__} sqlstate={e.sqlstate} node={e.node}: {e}")

        print("\n-- rows as tuples, dicts or named tuples")
        r = alice.query("SELECT id, who, note, NULL::text AS extra FROM demo_py_notes ORDER BY id")
        print(r)
        print(r.rows)
        print(r.dicts()[0])
        print(r.namedtuples()[-1])

        print("\n-- cluster.status()")
        for n in cluster.status():
            print(f"  {n.name:<16} {n.role:<8} {n.state:<12} lag {n.lag_bytes} bytes, {n.lag_seconds} s, "
                  f"conns {n.conns_in_use} in use / {n.conns_idle} idle, served {n.served}")
        alice.close()
        bob.close()


if __name__ == "__main__":
    main()
