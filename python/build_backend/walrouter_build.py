"""walrouter's PEP 517 build backend, in the source tree (pyproject.toml's
``backend-path``), with no build requirements: pip needs no package index,
and the interpreter needs neither setuptools nor wheel.

``build_wheel`` runs SWIG on ``bindings/python/walrouter.i``, compiles the C
core (``core/engine``, ``core/src``) and the wrapper for the interpreter that
runs it, links ``walrouter/_core<EXT_SUFFIX>`` (the core statically; libpq,
libcrypto and pthreads dynamically) and writes the wheel itself: the package
files, ``*.dist-info/`` with METADATA, WHEEL, entry_points.txt and RECORD.
``build_sdist`` writes a tar.gz of what a wheel is built from, with PKG-INFO.

Needs a C compiler, swig 4, and the libpq, OpenSSL and Python headers.
Environment: ``CC`` (default: the interpreter's compiler, else cc),
``CFLAGS``/``LDFLAGS`` (appended), ``SWIG`` (default swig), ``PG_CONFIG``,
``WALROUTER_BUILD_JOBS`` (parallel compiles; default: CPUs),
``WALROUTER_BUILD_CACHE`` (a directory where compiled objects are kept by a
hash of their source and flags, reused by later builds), and
``SOURCE_DATE_EPOCH`` (timestamps in the archives).
"""

from __future__ import annotations

import base64
import concurrent.futures
import csv
import gzip
import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "python/walrouter"

__all__ = [
    "build_wheel", "build_sdist", "get_requires_for_build_wheel", "get_requires_for_build_sdist",
    "prepare_metadata_for_build_wheel",
]

# ---- pyproject.toml ---------------------------------------------------------------


def _toml_value(text: str) -> Any:
    """A TOML value of the subset pyproject.toml uses: strings, booleans,
    integers, arrays of those and inline tables of strings."""
    text = text.strip()
    if text.startswith("["):
        return [_toml_value(v) for v in _split(text[1:-1])]
    if text.startswith("{"):
        out = {}
        for item in _split(text[1:-1]):
            k, v = item.split("=", 1)
            out[k.strip().strip('"')] = _toml_value(v)
        return out
    if text.startswith('"'):
        return text[1:-1].encode().decode("unicode_escape") if "\\" in text else text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return int(text)


def _split(text: str) -> List[str]:
    """Comma-separated items, commas inside strings, arrays or tables kept."""
    items, depth, quoted, cur = [], 0, False, ""
    for c in text:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in "[{":
            depth += 1
        elif not quoted and c in "]}":
            depth -= 1
        elif not quoted and depth == 0 and c == ",":
            items.append(cur)
            cur = ""
            continue
        cur += c
    if cur.strip():
        items.append(cur)
    return [i for i in (s.strip() for s in items) if i]


def _strip_comment(line: str) -> str:
    quoted = False
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            return line[:i]
    return line


def read_pyproject(path: Path) -> Dict[str, Any]:
    """pyproject.toml as a dict (tomllib where there is one, Python >= 3.11;
    else a parser of the subset this project's file uses)."""
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        with open(path, "rb") as f:
            return dict(tomllib.load(f))
    doc: Dict[str, Any] = {}
    table = doc
    pending = ""
    for raw in path.read_text("utf-8").splitlines():
        line = _strip_comment(raw).strip()
        if pending:
            pending += " " + line
            if pending.count("[") > pending.count("]"):
                continue
            key, value = pending.split("=", 1)
            table[key.strip().strip('"')] = _toml_value(value)
            pending = ""
            continue
        if not line:
            continue
        if line.startswith("["):
            table = doc
            for part in re.findall(r'"[^"]*"|[^.\s\[\]]+', line.strip("[]")):
                table = table.setdefault(part.strip('"'), {})
            continue
        key, value = line.split("=", 1)
        if value.strip().startswith("[") and value.count("[") > value.count("]"):
            pending = line
            continue
        table[key.strip().strip('"')] = _toml_value(value)
    return doc


# ---- metadata -------------------------------------------------------------------------


def _project() -> Dict[str, Any]:
    project = dict(read_pyproject(ROOT / "pyproject.toml")["project"])
    header = (ROOT / "core/include/walrouter.h").read_text("utf-8")
    m = re.search(r'#define WR_VERSION "([^"]+)"', header)
    if not m or m.group(1) != project["version"]:
        raise RuntimeError(f"pyproject.toml's version {project['version']!r} is not walrouter.h's "
                           f"WR_VERSION {m.group(1) if m else None!r}")
    return project


def metadata_text(project: Dict[str, Any]) -> str:
    """Core metadata 2.1 (METADATA in a wheel, PKG-INFO in an sdist)."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project['description']}",
    ]
    lic = project.get("license", {})
    if lic.get("text"):
        lines.append(f"License: {lic['text']}")
    if project.get("keywords"):
        lines.append(f"Keywords: {','.join(project['keywords'])}")
    for c in project.get("classifiers", []):
        lines.append(f"Classifier: {c}")
    lines.append(f"Requires-Python: {project['requires-python']}")
    body = ""
    if project.get("readme"):
        lines.append("Description-Content-Type: text/markdown")
        body = (ROOT / project["readme"]).read_text("utf-8")
    return "\n".join(lines) + "\n\n" + body


def entry_points_text(project: Dict[str, Any]) -> str:
    out = []
    for group, entries in project.get("entry-points", {}).items():
        out.append(f"[{group}]")
        out.extend(f"{name} = {target}" for name, target in entries.items())
        out.append("")
    return "\n".join(out)


def _dist_info(project: Dict[str, Any]) -> str:
    return f"{project['name']}-{project['version']}.dist-info"


def wheel_tag() -> str:
    """This interpreter's tag, e.g. cp311-cp311-linux_x86_64."""
    if sys.implementation.name != "cpython":
        raise RuntimeError("walrouter's extension is built for CPython only")
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    soabi = sysconfig.get_config_var("SOABI") or ""
    m = re.match(r"cpython-(\d+)([a-z]*)", soabi)
    abi = f"cp{m.group(1)}{m.group(2)}" if m else py
    plat = re.sub(r"[^A-Za-z0-9_]", "_", sysconfig.get_platform())
    return f"{py}-{abi}-{plat}"


# ---- compiling ---------------------------------------------------------------------------


def _run(cmd: List[str], cwd: Optional[Path] = None) -> None:
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"walrouter build: command failed ({p.returncode}): {shlex.join(cmd)}\n{p.stdout}")


def _tool_output(cmd: List[str]) -> Optional[str]:
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def _libpq_include() -> List[str]:
    pg_config = os.environ.get("PG_CONFIG", "pg_config")
    inc = _tool_output([pg_config, "--includedir"])
    if inc:
        return [f"-I{inc}"]
    flags = _tool_output(["pkg-config", "--cflags", "libpq"])
    if flags is not None:
        return shlex.split(flags)
    return ["-I/usr/include/postgresql"]


def _compiler() -> List[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cmd = shlex.split(cc)
    if not shutil.which(cmd[0]):
        cmd = ["cc"]
    return cmd


class _Builder:
    """Compiles the objects (in parallel, through the cache if any) and
    links the extension."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.cc = _compiler()
        self.cflags = ["-O2", "-fPIC", "-fvisibility=hidden", "-std=c11",
                       *shlex.split(os.environ.get("CFLAGS", ""))]
        self.pq = _libpq_include()
        cache = os.environ.get("WALROUTER_BUILD_CACHE")
        self.cache = Path(cache) if cache else None
        self.jobs = int(os.environ.get("WALROUTER_BUILD_JOBS") or os.cpu_count() or 2)

    def swig(self) -> Path:
        swig = os.environ.get("SWIG") or shutil.which("swig") or shutil.which("swig4.0") or "swig"
        out = self.work / "walrouter_wrap.c"
        (self.work / "swig-py").mkdir(exist_ok=True)
        _run([swig, "-python", "-builtin", f"-I{ROOT / 'core/include'}", f"-I{ROOT / 'bindings/python'}",
              "-outdir", str(self.work / "swig-py"), "-o", str(out), str(ROOT / "bindings/python/walrouter.i")])
        return out

    def compile(self, src: Path, flags: List[str]) -> Path:
        cmd = [*self.cc, *self.cflags, *flags, "-c", str(src)]
        obj = self.work / "obj" / (hashlib.sha256(str(src).encode()).hexdigest()[:12] + "-" + src.stem + ".o")
        obj.parent.mkdir(exist_ok=True)
        key = None
        if self.cache is not None:
            h = hashlib.sha256("\0".join(cmd).encode())
            h.update(src.read_bytes())
            for d in (ROOT / "core/include", ROOT / "core/src"):  # the headers it may include
                for header in sorted(d.glob("*.h")):
                    h.update(header.read_bytes())
            key = self.cache / (h.hexdigest()[:32] + ".o")
            if key.exists():
                shutil.copyfile(key, obj)
                return obj
        _run([*cmd, "-o", str(obj)])
        if key is not None:
            self.cache.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            tmp = key.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(obj, tmp)
            os.replace(tmp, key)
        return obj

    def extension(self, out: Path) -> None:
        inc = [f"-I{ROOT / 'core/include'}"]
        jobs: List[Tuple[Path, List[str]]] = []
        for src in sorted((ROOT / "core/engine").glob("*.c")):
            jobs.append((src, inc))
        for src in sorted((ROOT / "core/src").glob("*.c")):
            jobs.append((src, [*inc, f"-I{ROOT / 'core/src'}", *self.pq, "-D_POSIX_C_SOURCE=200809L"]))
        wrap = self.swig()
        pyinc = sysconfig.get_paths()["include"]
        jobs.append((wrap, [*inc, f"-I{pyinc}", *self.pq, "-w"]))
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs) as pool:
            objs = list(pool.map(lambda job: self.compile(*job), jobs))
        _run([*self.cc, "-shared", "-o", str(out), *[str(o) for o in objs], "-lpq", "-lcrypto", "-lpthread",
              *shlex.split(os.environ.get("LDFLAGS", ""))])


# ---- archives -------------------------------------------------------------------------------


def _epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def package_files() -> List[Path]:
    """The package's files in the source tree, as they go in a wheel."""
    src = ROOT / PACKAGE
    return sorted(p for p in src.iterdir()
                  if p.is_file() and (p.suffix in (".py", ".pyi") or p.name == "py.typed"))


def _write_wheel(path: Path, files: Iterable[Tuple[str, bytes, int]], dist_info: str) -> None:
    stamp = time.gmtime(max(_epoch(), 315532800))[:6]  # zip dates start in 1980
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
            writer.writerow([name, _record_hash(data), len(data)])
        name = f"{dist_info}/RECORD"
        writer.writerow([name, "", ""])
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.external_attr = 0o100644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, record.getvalue())


def _dist_info_files(project: Dict[str, Any], tag: Optional[str]) -> List[Tuple[str, bytes]]:
    out = [("METADATA", metadata_text(project).encode())]
    eps = entry_points_text(project)
    if eps:
        out.append(("entry_points.txt", eps.encode()))
    out.append(("top_level.txt", b"walrouter\n"))
    if (ROOT / "LICENSE").exists():
        out.append(("LICENSE", (ROOT / "LICENSE").read_bytes()))
    if tag is not None:
        wheel = (f"Wheel-Version: 1.0\nGenerator: walrouter_build {project['version']}\n"
                 f"Root-Is-Purelib: false\nTag: {tag}\n")
        out.append(("WHEEL", wheel.encode()))
    return out


# ---- PEP 517 hooks ------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: Optional[Dict[str, Any]] = None) -> str:
    project = _project()
    name = _dist_info(project)
    d = Path(metadata_directory) / name
    d.mkdir(parents=True, exist_ok=True)
    for fname, data in _dist_info_files(project, wheel_tag()):
        (d / fname).write_bytes(data)
    return name


def build_wheel(wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None,
                metadata_directory: Optional[str] = None) -> str:
    project = _project()
    tag = wheel_tag()
    dist_info = _dist_info(project)
    ext = "_core" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
    with tempfile.TemporaryDirectory(prefix="walrouter-build-") as tmp:
        work = Path(tmp)
        so = work / ext
        _Builder(work).extension(so)
        files: List[Tuple[str, bytes, int]] = []
        for p in package_files():
            files.append((f"walrouter/{p.name}", p.read_bytes(), 0o644))
        files.append((f"walrouter/{ext}", so.read_bytes(), 0o755))
        for fname, data in _dist_info_files(project, tag):
            files.append((f"{dist_info}/{fname}", data, 0o644))
        name = f"{project['name']}-{project['version']}-{tag}.whl"
        Path(wheel_directory).mkdir(parents=True, exist_ok=True)
        _write_wheel(Path(wheel_directory) / name, files, dist_info)
    return name


# What an sdist carries: enough to build the wheel again (and the docs).
SDIST_GLOBS = [
    "pyproject.toml", "README.md", "LICENSE*", "docs/python.md",
    "core/include/*.h", "core/engine/*.c", "core/engine/*.h", "core/src/*.c", "core/src/*.h",
    "bindings/python/*.i", "python/build_backend/*.py",
    "python/walrouter/*.py", "python/walrouter/*.pyi", "python/walrouter/py.typed",
]


def sdist_files() -> List[Path]:
    out = set()
    for pattern in SDIST_GLOBS:
        out.update(p for p in ROOT.glob(pattern) if p.is_file())
    return sorted(out)


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    project = _project()
    base = f"{project['name']}-{project['version']}"
    mtime = _epoch()
    Path(sdist_directory).mkdir(parents=True, exist_ok=True)
    path = Path(sdist_directory) / f"{base}.tar.gz"

    def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(f"{base}/{name}")
        info.size, info.mode, info.mtime = len(data), mode, mtime
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(data))

    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        add(tar, "PKG-INFO", metadata_text(project).encode())
        for p in sdist_files():
            add(tar, p.relative_to(ROOT).as_posix(), p.read_bytes(), 0o755 if os.access(p, os.X_OK) else 0o644)
    return path.name
