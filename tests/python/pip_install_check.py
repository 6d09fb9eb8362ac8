"""`pip install .` into a fresh venv of every CPython >= 3.9 found (Debian's
/usr/bin/python3 and the `python3` on PATH, when that is another one), with
and without build isolation, offline; then, outside the source tree and with
no PYTHONPATH, one read against the test cluster. Also the contents of the
wheel and the sdist built by the in-tree backend (the wheel built from the
sdist, as `python -m build` does), and `cmake --install` of the python
component.

Run by the ctest `python_pip_install` (not part of python_pytest: it builds
the extension for each interpreter; WALROUTER_BUILD_CACHE keeps the compiled
core between builds and runs)."""

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(f"/tmp/walrouter-pip-test-{os.getuid()}")
sys.path.insert(0, str(ROOT / "python/build_backend"))
import walrouter_build  # noqa: E402


def interpreters():
    """Distinct CPython >= 3.9 executables: /usr/bin/python3 and PATH's python3."""
    found, seen = [], set()
    for exe in ("/usr/bin/python3", shutil.which("python3")):
        if not exe or not os.path.exists(exe):
            continue
        p = subprocess.run([exe, "-c", "import sys, venv, pip; print(sys.version_info >= (3, 9), sys.prefix, "
                            "sys.implementation.name)"], capture_output=True, text=True)
        if p.returncode != 0:
            continue
        ok, prefix, impl = p.stdout.split()
        if ok == "True" and impl == "cpython" and prefix not in seen:
            seen.add(prefix)
            found.append(exe)
    return found


@pytest.fixture(scope="module")
def work():
    shutil.rmtree(WORK, ignore_errors=True)  # leftovers of an interrupted run
    WORK.mkdir(parents=True)
    yield WORK
    shutil.rmtree(WORK, ignore_errors=True)


def env_for_build():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env["PIP_NO_INDEX"] = "1"  # offline: nothing may be fetched
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.setdefault("WALROUTER_BUILD_CACHE", str(WORK / "cache"))
    return env


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def install_and_read(exe, i, isolation, dsn):
    venv = WORK / f"venv{i}"
    env = env_for_build()
    # The venv gets no pip of its own (ensurepip is most of a venv's creation
    # time): the interpreter's pip installs into it with --python, running
    # itself, and the build backend, on the venv's interpreter.
    run([exe, "-m", "venv", "--without-pip", str(venv)], env=env)
    py = venv / "bin/python"
    args = [exe, "-m", "pip", "--python", str(py), "install", "-q", str(ROOT)]
    if not isolation:
        args.insert(6, "--no-build-isolation")
    run(args, env=env, cwd=WORK)
    code = ("import os, sys, walrouter, walrouter.dbapi\n"
            "c = walrouter.connect(os.environ['WR_TEST_DSN'])\n"
            "with c.session() as s: r = s.query('SELECT 40 + $1::int', 2)\n"
            "print(r.scalar(), walrouter.__version__, walrouter.__file__.startswith(sys.prefix))\n"
            "c.close()\n")
    out = run([str(py), "-c", code], env={**env, "WR_TEST_DSN": dsn}, cwd=WORK)
    return exe, isolation, out.split()


def test_pip_install_in_a_venv_of_each_python_then_one_read(work, dsn):
    exes = interpreters()
    assert "/usr/bin/python3" in exes
    jobs = [(exe, 2 * i + k, isolation) for i, exe in enumerate(exes) for k, isolation in enumerate((True, False))]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda j: install_and_read(*j, dsn), jobs))
    for exe, isolation, (value, version, in_venv) in results:
        assert (value, version, in_venv) == ("42", "0.1.0", "True"), (exe, isolation)


def record_ok(z, dist_info):
    rows = list(csv.reader(io.StringIO(z.read(f"{dist_info}/RECORD").decode())))
    listed = {r[0] for r in rows}
    assert listed == set(z.namelist())
    for name, digest, size in rows:
        if name.endswith("RECORD"):
            assert digest == size == ""
            continue
        data = z.read(name)
        expect = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expect}" and int(size) == len(data), name


def test_the_sdist_and_the_wheel_built_from_it_carry_the_package_and_its_metadata(work):
    out = work / "dist"
    sdist = out / walrouter_build.build_sdist(str(out))
    with tarfile.open(sdist) as t:
        names = set(t.getnames())
        base = "walrouter-0.1.0/"
        for must in ("PKG-INFO", "pyproject.toml", "README.md", "LICENSE", "core/src/session.c", "core/engine/op.c",
                     "core/include/walrouter.h", "bindings/python/walrouter.i",
                     "python/build_backend/walrouter_build.py", "python/walrouter/__init__.py",
                     "python/walrouter/dbapi.py", "python/walrouter/_core.pyi", "python/walrouter/py.typed"):
            assert base + must in names, must
        assert not any("__pycache__" in n or n.startswith(base + "build") for n in names)  # no build trees
        pkg_info = t.extractfile(base + "PKG-INFO").read().decode()
        t.extractall(work / "unpacked")
    assert "Version: 0.1.0" in pkg_info and "Requires-Python: >=3.9" in pkg_info
    # The wheel, built from the unpacked sdist by Debian's python with no build isolation.
    src = work / "unpacked/walrouter-0.1.0"
    whl_dir = work / "wheel"
    run(["/usr/bin/python3", "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
         str(whl_dir), str(src)], env=env_for_build(), cwd=work)
    (whl,) = whl_dir.glob("walrouter-0.1.0-cp3*-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        di = "walrouter-0.1.0.dist-info"
        for must in ("walrouter/__init__.py", "walrouter/dbapi.py", "walrouter/sqlalchemy.py",
                     "walrouter/py.typed", "walrouter/_core.pyi", f"{di}/METADATA", f"{di}/WHEEL",
                     f"{di}/RECORD", f"{di}/entry_points.txt", f"{di}/LICENSE"):
            assert must in names, must
        assert any(n.startswith("walrouter/_core.cpython-") and n.endswith(".so") for n in names)
        meta = z.read(f"{di}/METADATA").decode()
        for line in ("Metadata-Version: 2.1", "Name: walrouter", "Version: 0.1.0", "License: PostgreSQL",
                     "Requires-Python: >=3.9"):
            assert line + "\n" in meta
        wheel = z.read(f"{di}/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel and "Tag: cp3" in wheel
        assert "postgresql.walrouter = walrouter.sqlalchemy:WalrouterDialect" in z.read(
            f"{di}/entry_points.txt").decode()
        record_ok(z, di)


def test_cmake_install_still_puts_the_package_where_python_finds_it(work, dsn):
    build = os.environ.get("WR_BUILD_DIR")
    if not build:
        pytest.skip("WR_BUILD_DIR is not set (ctest sets it)")
    prefix = work / "prefix"
    run(["cmake", "--install", build, "--prefix", str(prefix), "--component", "python"])
    (init,) = prefix.glob("lib/python3*/*-packages/walrouter/__init__.py")
    assert (init.parent / "_core.pyi").exists() and (init.parent / "dbapi.py").exists()
    code = ("import os, walrouter\n"
            "assert walrouter.__file__ == os.environ['EXPECT'], walrouter.__file__\n"
            "with walrouter.connect(os.environ['WR_TEST_DSN']) as c, c.session() as s:\n"
            "    print(s.query('SELECT 42').scalar())\n")
    env = {**env_for_build(), "PYTHONPATH": str(init.parent.parent), "WR_TEST_DSN": dsn, "EXPECT": str(init)}
    assert run(["/usr/bin/python3", "-c", code], env=env, cwd=work).split() == ["42"]


def test_the_backend_reads_pyproject_without_tomllib_as_tomllib_does():
    try:
        import tomllib
    except ImportError:
        pytest.skip("no tomllib to compare with (Python < 3.11)")
    with open(ROOT / "pyproject.toml", "rb") as f:
        expected = tomllib.load(f)
    saved = sys.modules.get("tomllib")
    sys.modules["tomllib"] = None  # the fallback parser, as on Python 3.9 and 3.10
    try:
        assert walrouter_build.read_pyproject(ROOT / "pyproject.toml") == expected
    finally:
        sys.modules["tomllib"] = saved
