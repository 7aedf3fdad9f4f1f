"""A share remounted with new inodes (a server restart, an SMB reconnect): every file
comes back as a new file system object with the same name, bytes and times. The real
service must neither measure them again nor lose a row."""

from __future__ import annotations

import shutil
import time

import pytest

from psdwatch.daemon import store

from .conftest import classical_service, drop_frame, read_rows, start_service, wait_for

pytestmark = pytest.mark.slow


def test_files_that_come_back_with_new_inodes_are_not_measured_again(tmp_path):
    root, config, database = classical_service(tmp_path, "rescan_seconds = 1.0\n")
    for k in range(3):
        drop_frame(root / "S", f"f{k}", k + 1, size=384)
    service = start_service(config)

    def rows() -> list[tuple]:
        return [tuple(r.values()) for r in read_rows(
            database, "SELECT path, status, sha256, processed_at, n_particles FROM images ORDER BY path")]

    try:
        wait_for(lambda: database.is_file() and [r[1] for r in rows()] == ["done"] * 3, 60, "three files done")
        before = rows()
        inodes = {p.name: p.stat().st_ino for p in (root / "S").iterdir()}
        # The "remount": the whole tree goes away and comes back as copies (new inodes,
        # same bytes, same modification times).
        shutil.move(str(root), str(tmp_path / "away"))
        time.sleep(2)
        shutil.copytree(tmp_path / "away", root, copy_function=shutil.copy2)
        assert all(p.stat().st_ino != inodes[p.name] for p in (root / "S").iterdir())
        time.sleep(6)  # several rescans and the watcher's catch-up
        assert service.poll() is None
        assert rows() == before  # nothing measured again, nothing lost, nothing marked
        db = store.open_store(database)
        assert db.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM images WHERE missing_since IS NOT NULL").fetchone()[0] == 0
    finally:
        service.terminate()
        service.wait(timeout=60)
