"""The test harness's real parts: the PostgreSQL server is real, and missing parts never pass CI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.realparts import need_module, need_part

ROOT = Path(__file__).resolve().parents[2]


def test_postgres_url_is_a_real_fresh_database(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == postgres_url.rsplit("/", 1)[1]
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
        conn.execute("CREATE TABLE listing (id text PRIMARY KEY, price numeric, title text)")
        conn.execute("INSERT INTO listing VALUES (%s, %s, %s)", ("l-1", 12.5, "Oak table \u00e9"))
    with psycopg.connect(postgres_url) as conn:  # committed, seen by a new connection
        assert conn.execute("SELECT id, price, title FROM listing").fetchall() == [("l-1", 12.5, "Oak table \u00e9")]
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"


def test_need_part_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget here"):
        need_part("no widget here")
    with pytest.raises(pytest.skip.Exception, match="no_such_module_xyz is not installed"):
        need_module("no_such_module_xyz")


def test_need_part_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and a real part is missing: no widget here"):
        need_part("no widget here")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_xyz"):
        need_module("no_such_module_xyz")


SUITE = """
    import pytest
    from tests.realparts import need_module, need_part

    @pytest.fixture
    def widget():
        need_part("no widget here")

    def test_with_a_missing_part(widget):
        pass

    @pytest.mark.realpart
    def test_plain_skip_in_a_realpart_test():
        pytest.skip("no gadget here")

    def test_ordinary_skip_is_still_a_skip():
        pytest.skip("not relevant on this platform")
"""


@pytest.mark.parametrize(("ci", "expected"), [("", "3 skipped"), ("true", "1 failed, 1 skipped, 1 error")])
def test_missing_parts_fail_the_run_only_under_ci(tmp_path: Path, ci: str, expected: str) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_configure, pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers",
                           "-rA", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert expected in done.stdout.splitlines()[-1], done.stdout
    assert done.returncode == (1 if ci else 0), done.stdout
    if ci:
        assert "CI=true and a real part is missing: no widget here" in done.stdout
        assert "CI=true and a real part is missing: no gadget here" in done.stdout
