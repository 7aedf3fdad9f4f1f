"""A store locked by another program past the busy timeout (a sqlite3 shell left in
a transaction): the real service waits, says so once a minute, drops nothing and
dies of nothing; when the lock goes, every file is measured once."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import pytest

from psdwatch.daemon import store

from .conftest import classical_service, count_status, drop_frame, start_service, wait_for

pytestmark = pytest.mark.slow


def test_a_lock_held_past_the_busy_timeout_is_waited_out(tmp_path):
    root, config, database = classical_service(tmp_path, store_keys="busy_timeout = 1.0\n")
    share = root / "S"
    log = tmp_path / "service.log"
    with open(log, "w") as out:
        service = start_service(config, stdout=out, stderr=subprocess.STDOUT)
    try:
        drop_frame(share, "before", 1)
        wait_for(lambda: count_status(database) == 1, 60,
                 "the first file")
        holder = sqlite3.connect(str(database), timeout=5, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # what a forgotten sqlite3 shell does
        try:
            drop_frame(share, "during_1", 2)
            drop_frame(share, "during_2", 3)
            time.sleep(14)  # far past the 1 s busy timeout
            assert service.poll() is None, "the service died while the store was locked"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_for(lambda: count_status(database) == 3, 60,
                 "the files dropped while the store was locked")
        assert service.poll() is None
    finally:
        service.terminate()
        service.wait(timeout=60)
    lines = log.read_text().splitlines()
    waiting = [line for line in lines if "database is locked" in line]
    assert waiting and len(set(waiting)) == len(waiting), "\n".join(waiting)  # each once a minute, not every 5 s
    assert not any("Traceback" in line for line in lines), log.read_text()[-2000:]
    db = store.open_store(database)
    rows = list(db.query("SELECT path, status FROM images ORDER BY path"))
    assert [(r["path"], r["status"]) for r in rows] == [
        ("S/before.tif", "done"), ("S/during_1.tif", "done"), ("S/during_2.tif", "done")]
    assert db.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == 0
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
