"""`mypy --strict` passes on the package (with its _core.pyi), and code using
it gets typed rows: Result is generic over its row type."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")
SRC = Path(__file__).resolve().parents[2] / "python"


def mypy(*args, cwd=SRC):
    p = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null",
                        *args], cwd=cwd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def test_mypy_strict_passes_on_the_package():
    rc, out = mypy("-p", "walrouter")
    assert rc == 0, out


def test_user_code_gets_typed_results(tmp_path):
    (tmp_path / "user.py").write_text(textwrap.dedent("""
        from typing import Tuple
        import walrouter
        from walrouter import dbapi

        c = walrouter.connect("postgresql://h/db")
        with c.session(token=None) as s:
            r = s.query("SELECT 1")
            reveal_type(r)
            reveal_type(r[0])
            typed: walrouter.Result[Tuple[int, str]] = s.query("SELECT 1, 'a'")  # type: ignore[assignment]
            reveal_type(typed[0])
            n: int = s.execute("DELETE FROM t")
        cur = dbapi.connect(c).cursor()
        reveal_type(cur.execute("SELECT %s", (1,)).fetchone())
        s.query(b"SELECT 1")
    """))
    rc, out = mypy(str(tmp_path / "user.py"), cwd=SRC)
    assert 'Revealed type is "walrouter.result.Result[builtins.tuple[Any, ...]]"' in out, out
    assert 'Revealed type is "builtins.tuple[Any, ...]"' in out, out
    assert 'Revealed type is "Tuple[builtins.int, builtins.str]"' in out, out
    assert 'Revealed type is "Union[builtins.tuple[Any, ...], None]"' in out, out
    assert 'Argument 1 to "query" of "Session" has incompatible type "bytes"' in out, out
