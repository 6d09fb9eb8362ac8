#!/usr/bin/python3
"""The docs runner's own test: run_docs.py on fixtures/verdicts.md, where each
block's preceding line says what the runner must report for it (ok, FAIL,
skip; ignored blocks are not reported)."""
import os
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
build = sys.argv[1]
fixture = os.path.join(here, "fixtures", "verdicts.md")
lines = open(fixture, encoding="utf-8").read().split("\n")
want, intro, inside = {}, None, False
for n, line in enumerate(lines, 1):
    m = re.match(r"^(ok|FAIL|skip|ignored)\b", line)
    if m and not inside:
        intro = m.group(1)
    elif line.startswith("```"):
        if not inside and intro != "ignored":
            want[n] = intro
        inside = not inside
p = subprocess.run([sys.executable, os.path.join(here, "run_docs.py"), "--build", build,
                    "--work", os.path.join(build, "tests", "docs", "work-runner"), fixture],
                   capture_output=True, text=True, timeout=300)
got = {}
for line in p.stdout.split("\n"):
    m = re.match(r"^(ok|FAIL|skip)\s+\S*verdicts\.md:(\d+)", line)
    if m:
        got[int(m.group(2))] = m.group(1)
bad = [(n, want.get(n), got.get(n)) for n in sorted(set(want) | set(got)) if want.get(n) != got.get(n)]
for n, w, g in bad:
    print("verdicts.md:%d: want %s, got %s" % (n, w, g))
if p.returncode != 1:
    print("run_docs.py exited with %d, want 1" % p.returncode)
if bad or p.returncode != 1:
    print(p.stdout + p.stderr)
    sys.exit(1)
print("run_docs.py reported all %d fixture blocks as expected" % len(want))
