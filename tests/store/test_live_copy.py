"""Copying a folder whose SQLite store this process has open must not cut that connection off.

Closing any descriptor of a file drops every POSIX lock the process holds on it, so a file-by-file
copy (``shutil.copytree``) of a live WAL store leaves this process's connection unlocked: the next
process to open the store takes it for the only user, checkpoints, deletes the WAL and resets the
shared-memory index under us (measured: the live connection then missed every later write; in
a run of tests/serve it once killed pytest with SIGBUS). ``tests.factories.copy_artifacts`` copies the
store through SQLite's backup API instead."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.factories import copy_artifacts

WRITE = ("import sqlite3, sys; b = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "b.execute('PRAGMA journal_mode=WAL'); [b.execute('insert into t values (2)') for _ in range(50)]; b.close()")


def test_a_live_connection_keeps_seeing_other_processes_writes_after_a_copy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "index").mkdir(parents=True)
    (src / "index" / "photos.faiss").write_bytes(b"index")
    (src / "index" / "store.sqlite").write_bytes(b"not the store")  # only the top-level store is special
    db = src / "store.sqlite"
    live = sqlite3.connect(db, isolation_level=None)
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("create table t(x)")
    live.execute("insert into t values (1)")
    for i in range(3):
        dst = copy_artifacts(src, tmp_path / f"copy{i}")
        assert (dst / "index" / "photos.faiss").read_bytes() == b"index"
        assert (dst / "index" / "store.sqlite").read_bytes() == b"not the store"
        with sqlite3.connect(dst / "store.sqlite") as copy:
            assert copy.execute("select count(*) from t").fetchone()[0] == 1 + 50 * i  # a consistent copy
        subprocess.run([sys.executable, "-c", WRITE, str(db)], check=True, timeout=60)
        assert live.execute("select count(*) from t").fetchone()[0] == 1 + 50 * (i + 1)
    live.close()
