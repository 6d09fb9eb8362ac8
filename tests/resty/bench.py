#!/usr/bin/env python3
"""Bench: replica reads through resty.walrouter against a plain cosocket read
with no routing (same replica, same nginx, one worker), interleaved rounds.

  WR_TEST_DSN=... tests/resty/bench.py [--engine-lib PATH] [--rounds 5] [--seconds 3] [-c 16]

Starts nginx as the suite does (cluster "bench": the primary and the first
replica), builds tests/resty/loadgen.c, and prints per round and the medians:
requests/s and p99 latency for both paths."""
import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_tests as rt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine-lib", default=os.environ.get("WALROUTER_ENGINE_LIB", ""))
    ap.add_argument("--port", type=int, default=25509)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("-c", type=int, default=16)
    a = ap.parse_args()
    gen = "/tmp/wr-resty-loadgen"
    subprocess.run(["cc", "-O2", "-o", gen, os.path.join(rt.HERE, "loadgen.c")], check=True)
    cl = rt.Cluster()
    ng = rt.Nginx(a.port, 1, a.engine_lib, cl.dsn)
    ng.start()
    paths = {"routed": "/bench/routed", "plain": "/plain?cluster=bench&node=1"}
    res = {k: [] for k in paths}
    try:
        for k, p in paths.items():  # warm up: pools, probes, JIT traces
            st, body = rt.get(a.port, p)
            print("%-7s %s" % (k, body.strip()))
            subprocess.run([gen, str(a.port), p, str(a.c), "1"], check=True, capture_output=True)
        for r in range(a.rounds):
            for k in (("routed", "plain") if r % 2 == 0 else ("plain", "routed")):
                out = subprocess.run([gen, str(a.port), paths[k], str(a.c), str(a.seconds)], check=True,
                                     capture_output=True, text=True).stdout.split()
                n, errors, rps, p50, p99 = map(float, out)
                res[k].append((rps, p99 / 1000, errors))
                print("round %d %-7s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d"
                      % (r + 1, k, rps, p50 / 1000, p99 / 1000, errors), flush=True)
        st, body = rt.get(a.port, "/status?cluster=bench")
        for n in __import__("json").loads(body)["nodes"]:
            print("served by %s: %s" % (n["name"], {k: v for k, v in n["served"].items() if v}))
    finally:
        ng.stop()
    for k in paths:
        print("median %-7s %7.0f req/s  p99 %6.2f ms" % (k, statistics.median(x[0] for x in res[k]),
                                                         statistics.median(x[1] for x in res[k])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
