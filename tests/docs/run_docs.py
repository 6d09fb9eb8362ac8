#!/usr/bin/python3
"""run_docs.py — the docs run as written: every fenced snippet of README.md and
docs/*.md is checked against a real cluster (WR_TEST_DSN).

  run_docs.py --build BUILD_DIR [--source SRC_DIR] [FILE.md ...]

- ```c: compiled with -Wall -Werror against core/include and the build's
  libwalrouter; a block with main() is also run, with the DSN in DATABASE_URL.
- ```lua: run by lua5.4 with the build's module (LUA_PATH/LUA_CPATH as for
  busted); nginx-only code (the blocks of docs/openresty.md, and any block that
  uses `ngx.`) is only syntax-checked with `luajit -bl` (skipped when luajit is
  missing).
- ```python: run by /usr/bin/python3 with PYTHONPATH=<build>/python; a
  top-level `await` runs in an asyncio event loop (as `python3 -m asyncio`).
- A block whose first line is `$ lua5.4 -i` (then `> ` lines) or `$ ... python3`
  (then `>>> ` lines) is a REPL transcript: it is replayed and its output must
  match the block (Python: doctest with ELLIPSIS and NORMALIZE_WHITESPACE; Lua:
  tests/docs/lua_repl.lua, `...` matching any text).
- Other fences (sh, cmake, nginx, text, no tag...) are not run.

The DSN that `tests/cluster.sh start` prints with its defaults stands for the
cluster in the docs; it and its host:port names are replaced by the real
WR_TEST_DSN's, in the code and in the expected output.

A block may be preceded by hidden directives (HTML comments):
  <!-- docs-test: setup
  code in the block's language, run before it (names a fragment only mentions) -->
  <!-- docs-test: skip the reason -->
In setup code, DATABASE_URL (an environment variable) holds the DSN.
"""
import argparse
import doctest
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def doc_dsn(src):
    """What `tests/cluster.sh start` prints with its default settings."""
    text = open(os.path.join(src, "tests", "cluster.sh"), encoding="utf-8").read()
    port = re.search(r"^BASE_PORT=\$\{WR_BASE_PORT:-(\d+)\}", text, re.M)
    cred = re.search(r"^WR_USER=(\S+) WR_PASS=(\S+) WR_DB=(\S+)", text, re.M)
    if not port or not cred:
        raise SystemExit("run_docs: cannot read the default port and credentials of tests/cluster.sh")
    p = int(port.group(1))
    return "postgresql://%s:%s@%s/%s" % (cred.group(1), cred.group(2),
                                        ",".join("127.0.0.1:%d" % (p + i) for i in range(3)), cred.group(3))


TIMEOUT = 60  # seconds, for each compile and each run


class Block:
    def __init__(self, path, line, lang, text, setup, skip):
        self.path, self.line, self.lang, self.text = path, line, lang, text
        self.setup, self.skip = setup, skip

    def where(self):
        return "%s:%d" % (self.path, self.line)

    def kind(self):
        first = self.text.lstrip("\n").split("\n", 1)[0].strip()
        if re.match(r"^\$ (.*\s)?lua5\.4 -i$", first):
            return "lua-repl"
        if re.match(r"^\$ (.*\s)?\S*python3$", first):
            return "python-repl"
        return self.lang


DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(setup|skip)\b(.*?)-->", re.S)
FENCE = re.compile(r"^( *)(`{3,})\s*([\w+-]*)[^`]*$")


def parse(path, label):
    """The fenced blocks of a Markdown file, with the directives before each."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, pending, i = [], {}, 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("<!--") and "docs-test:" in line:
            j, text = i, line
            while "-->" not in text and j + 1 < len(lines):
                j += 1
                text += "\n" + lines[j]
            m = DIRECTIVE.search(text)
            if not m:
                raise SystemExit("%s:%d: malformed docs-test comment" % (label, i + 1))
            body = m.group(2)
            if m.group(1) == "setup":
                pending["setup"] = body.split("\n", 1)[1] if "\n" in body else body.strip()
            else:
                pending["skip"] = body.strip() or "no reason given"
            i = j + 1
            continue
        m = FENCE.match(line)
        if m:
            indent, ticks, lang = len(m.group(1)), m.group(2), m.group(3).lower()
            body, j = [], i + 1
            while j < len(lines) and not re.match(r"^ *%s`*\s*$" % ticks, lines[j]):
                body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
                j += 1
            blocks.append(Block(label, i + 1, lang, "\n".join(body) + "\n",
                                pending.get("setup"), pending.get("skip")))
            pending, i = {}, j + 1
            continue
        if line.strip() and pending:
            raise SystemExit("%s:%d: a docs-test comment must come right before its block" % (label, i + 1))
        i += 1
    return blocks


def hostports(dsn):
    m = re.match(r"^postgres(?:ql)?://(?:[^@/]*@)?([^/?]*)", dsn)
    if not m:
        raise SystemExit("WR_TEST_DSN is not a postgresql:// URI with hosts: cannot map the docs' DSN")
    return m.group(1).split(",")


class Cluster:
    """Maps the docs' DSN and node names onto the real cluster's."""

    def __init__(self, doc_dsn, dsn):
        self.doc_dsn, self.dsn = doc_dsn, dsn
        doc, real = hostports(doc_dsn), hostports(dsn)
        if len(real) < len(doc):
            raise SystemExit("WR_TEST_DSN names %d hosts; the docs show %d" % (len(real), len(doc)))
        self.map = {doc_dsn: dsn}
        self.map.update(zip(doc, real))
        # A port alone (Python's NodeStatus(port=25433)) maps too.
        self.map.update((d.rsplit(":", 1)[1], r.rsplit(":", 1)[1]) for d, r in zip(doc, real))
        keys = sorted(self.map, key=len, reverse=True)
        self.re = re.compile("|".join(re.escape(k) if not k.isdigit() else r"\b%s\b" % k for k in keys))

    def sub(self, text):
        return self.re.sub(lambda m: self.map[m.group(0)], text)


class Runner:
    def __init__(self, src, build, cluster, verbose, work):
        self.src, self.build, self.cluster, self.verbose = src, build, cluster, verbose
        # In the build tree, wiped first: an interrupted run leaves nothing behind for long.
        self.tmp = work
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self.env = dict(os.environ, DATABASE_URL=cluster.dsn)
        lua_path = "%s/lua/?.lua;%s/lua/?/init.lua;;" % (src, src)
        lua_cpath = "%s/lua/?.so;;" % build
        self.env.update(LUA_PATH=lua_path, LUA_CPATH=lua_cpath, LUA_PATH_5_4=lua_path,
                        LUA_CPATH_5_4=lua_cpath, PYTHONPATH=os.path.join(build, "python"))
        self.luajit = shutil.which("luajit")
        self.n = 0

    def file(self, name, text):
        self.n += 1
        path = os.path.join(self.tmp, "%03d_%s" % (self.n, name))
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run(self, argv, what, stdin=None):
        try:
            p = subprocess.run(argv, env=self.env, cwd=self.tmp, input=stdin, capture_output=True,
                               text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired as e:
            return False, "%s: timed out after %d s\n%s%s" % (what, TIMEOUT, e.stdout or "", e.stderr or "")
        out = p.stdout + p.stderr
        if p.returncode != 0:
            return False, "%s exited with %d\n%s" % (what, p.returncode, out)
        return True, out

    # ```c
    def c(self, b):
        code = self.cluster.sub(b.text)
        if b.setup:
            code = b.setup + "\n#line %d \"%s\"\n" % (b.line + 1, b.path) + code
        else:
            code = "#line %d \"%s\"\n" % (b.line + 1, b.path) + code
        has_main = re.search(r"\bint\s+main\s*\(", b.text) is not None
        src = self.file("snippet.c", code)
        cc = os.environ.get("CC", "cc")
        flags = [cc, "-Wall", "-Werror", "-I", os.path.join(self.src, "core", "include")]
        if not has_main:
            return self.run(flags + ["-c", src, "-o", src[:-2] + ".o"], "cc") + ("compiled",)
        exe = src[:-2]
        lib = os.path.join(self.build, "core")
        ok, out = self.run(flags + [src, "-o", exe, "-L", lib, "-lwalrouter", "-Wl,-rpath," + lib], "cc")
        if not ok:
            return ok, out, "compiled"
        ok, out = self.run([exe], "the program")
        return ok, out, "compiled and run"

    # ```lua
    def lua(self, b):
        code = self.cluster.sub(b.text)
        if b.path.endswith("openresty.md") or re.search(r"\bngx\.", b.text):
            if not self.luajit:
                return None, "luajit is not installed", "syntax"
            src = self.file("snippet.lua", code)
            ok, out = self.run([self.luajit, "-bl", src], "luajit -bl")
            return ok, out if not ok else "", "syntax-checked (luajit -bl)"
        src = self.file("snippet.lua", (b.setup or "") + "\n" + code if b.setup else code)
        ok, out = self.run(["lua5.4", src], "lua5.4")
        return ok, out, "run"

    # ```python
    def python(self, b):
        code = self.cluster.sub(b.text)
        src = self.file("snippet.py", b.setup + "\n" + code if b.setup else code)
        ok, out = self.run(["/usr/bin/python3", os.path.abspath(__file__), "--python", src], "python3")
        return ok, out, "run"

    # $ lua5.4 -i
    def lua_repl(self, b):
        body = self.cluster.sub(b.text.lstrip("\n").split("\n", 1)[1])
        inputs, expected = [], []
        for line in body.rstrip("\n").split("\n"):
            if line.startswith(">> ") or line == ">>":
                inputs.append(line[3:])
            elif line.startswith("> ") or line == ">":
                inputs.append(line[2:])
            expected.append(line)
        src = self.file("repl.txt", "\n".join(inputs) + "\n")
        argv = ["lua5.4", os.path.join(HERE, "lua_repl.lua"), src]
        if b.setup:
            argv.append(self.file("setup.lua", b.setup))
        ok, out = self.run(argv, "the Lua REPL replay")
        if not ok:
            return ok, out, "replayed"
        want = "\n".join(expected) + "\n"
        if matches(want, out):
            return True, "", "replayed"
        return False, diff(want, out), "replayed"

    # $ python3
    def python_repl(self, b):
        body = self.cluster.sub(b.text.lstrip("\n").split("\n", 1)[1])
        src = self.file("repl.txt", body)
        setup = self.file("setup.py", b.setup or "")
        ok, out = self.run(["/usr/bin/python3", os.path.abspath(__file__), "--doctest", src, setup,
                            b.where()], "doctest")
        return ok, out, "replayed (doctest)"

    @staticmethod
    def caught_up():
        """A transcript shows reads on replicas right after connecting: both
        replicas first replay what the block before wrote (with the test
        cluster's tests/cluster.sh, when WR_CLUSTER_SH names it)."""
        sh = os.environ.get("WR_CLUSTER_SH")
        for n in (1, 2) if sh else ():
            subprocess.run([sh, "wait-replay", str(n)], capture_output=True, timeout=60, check=True)

    def check(self, b):
        kind = b.kind()
        fn = {"c": self.c, "lua": self.lua, "python": self.python, "lua-repl": self.lua_repl,
              "python-repl": self.python_repl}.get(kind)
        if fn is None:
            return None
        if b.skip:
            print("skip %s (%s): %s" % (b.where(), kind, b.skip), flush=True)
            return True
        t = time.monotonic()
        other = [u for u in re.findall(r"postgres(?:ql)?://[^\s\"']+", b.text)
                 if u != self.cluster.doc_dsn] if kind.endswith("-repl") else []
        if other:
            ok, out, how = False, ("shows %s; a transcript shows the DSN tests/cluster.sh prints: %s"
                                   % (other[0], self.cluster.doc_dsn)), "replayed"
        else:
            if kind.endswith("-repl"):
                self.caught_up()
            ok, out, how = fn(b)
        took = time.monotonic() - t
        if ok is None:
            print("skip %s (%s): %s" % (b.where(), kind, out), flush=True)
            return True
        print("%s %s (%s, %s, %.1f s)" % ("ok  " if ok else "FAIL", b.where(), kind, how, took), flush=True)
        if not ok or (self.verbose and out):
            out = re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", r"\1********@", out)  # no password
            print("    " + out.rstrip("\n").replace("\n", "\n    "), flush=True)
        return ok


def pattern(want):
    """`...` matches any text (also across lines); trailing blanks never count."""
    parts = [re.escape(p) for p in norm(want).split("...")]
    return re.compile(".*?".join(parts), re.S)


def norm(text):
    return "\n".join(l.rstrip() for l in text.rstrip("\n").split("\n")) + "\n"


def matches(want, got):
    return pattern(want).fullmatch(norm(got)) is not None


def diff(want, got):
    import difflib
    d = difflib.unified_diff(norm(want).split("\n"), norm(got).split("\n"), "the docs", "the replay",
                             lineterm="")
    return "\n".join(d)


def python_main(path):
    """Runs one Python snippet; top-level `await` (asyncio fragments, as in
    `python3 -m asyncio`) runs in an event loop."""
    import ast
    import asyncio
    code = compile(open(path, encoding="utf-8").read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    globs = {"__name__": "__main__", "__file__": path}
    sys.path[0] = os.path.dirname(path)
    result = eval(code, globs)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return 0


def doctest_main(path, setup_path, where):
    """Runs one Python transcript as a doctest (in its own interpreter)."""
    text = open(path, encoding="utf-8").read()
    globs = {"__name__": "__main__"}
    setup = open(setup_path, encoding="utf-8").read()
    if setup.strip():
        exec(compile(setup, where + " (setup)", "exec"), globs)
    test = doctest.DocTestParser().get_doctest(text, globs, where, where, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
                                                | doctest.REPORT_ONLY_FIRST_FAILURE)
    runner.run(test, out=sys.stdout.write)
    return 1 if runner.failures else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--python":
        return python_main(sys.argv[2])
    if len(sys.argv) > 1 and sys.argv[1] == "--doctest":
        return doctest_main(*sys.argv[2:5])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="the build directory (libwalrouter, Lua module, Python package)")
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(HERE)), help="the source tree")
    ap.add_argument("--work", help="scratch directory, wiped first (default: BUILD_DIR/tests/docs/work)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the output of blocks that pass")
    ap.add_argument("files", nargs="*", help="Markdown files, relative to the source tree "
                    "(default: README.md and docs/*.md)")
    args = ap.parse_args()
    dsn = os.environ.get("WR_TEST_DSN")
    if not dsn:
        print("run_docs: WR_TEST_DSN is not set (run tests/run.sh, or tests/cluster.sh start)", file=sys.stderr)
        return 2
    src, build = os.path.abspath(args.source), os.path.abspath(args.build)
    files = args.files or ["README.md"] + sorted(
        "docs/" + f for f in os.listdir(os.path.join(src, "docs")) if f.endswith(".md"))
    work = os.path.abspath(args.work or os.path.join(build, "tests", "docs", "work"))
    runner = Runner(src, build, Cluster(doc_dsn(src), dsn), args.verbose, work)
    failed = ran = 0
    try:
        for name in files:
            for b in parse(os.path.join(src, name), name):
                ok = runner.check(b)
                if ok is None:
                    continue
                ran += 1
                failed += not ok
    finally:
        if not failed:
            shutil.rmtree(runner.tmp, ignore_errors=True)
    if failed:
        print("the snippets as run are kept in %s" % runner.tmp)
    print("%d of %d snippets failed" % (failed, ran) if failed else "all %d snippets passed" % ran)
    return 1 if failed or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
