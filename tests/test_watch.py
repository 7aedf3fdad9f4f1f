"""The watcher with real watchdog observers (inotify and polling), real files
written slowly in chunks, and a real SQLite store behind it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from psdwatch.daemon import store

from .conftest import wait_for
from psdwatch.daemon.watch.watcher import Settler, StoreIntake, Watcher, WatchSettings, matches, mount_type, wants_polling

SETTLE = 0.8
POLL = 0.3


def slow_write(path: Path, chunks: int = 6, pause: float = 0.15, chunk: bytes = b"x" * 4096) -> float:
    """Write like a microscope PC over a slow link: pauses well under the settle
    time between chunks (no fsync: a busy CI disk can stall one for longer than
    the settle time, and stat sees flushed bytes anyway). Returns the time the
    last byte was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for i in range(chunks):
            out.write(chunk)
            out.flush()
            if i < chunks - 1:
                time.sleep(pause)
    return time.monotonic()


def queued(db) -> dict[str, dict]:
    return {r["path"]: r for r in db.query("SELECT * FROM queue")}


class Running:
    """A Watcher in its own thread with its own store connection, as the service runs it."""

    def __init__(self, settings: WatchSettings, db_path: Path):
        self.stop = threading.Event()
        self.started = threading.Event()
        self.settings, self.db_path = settings, db_path
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(10)

    def _run(self) -> None:
        db = store.open_store(self.db_path)
        intake = StoreIntake(db, self.settings.root)
        self.watcher = Watcher(self.settings, intake.on_settled, intake.known)
        self.started.set()
        try:
            self.watcher.run(self.stop)
        finally:
            db.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


@pytest.fixture
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    return root


@pytest.fixture
def db(tmp_path: Path):
    db = store.open_store(tmp_path / "state" / "psdwatch.sqlite")
    yield db
    db.close()


def settings_for(root: Path, polling: bool | str, **more) -> WatchSettings:
    return WatchSettings(root=root, patterns=("*.tif", "*.tiff", "*.dm4", "*.emi"),
                         settle_seconds=SETTLE, polling=polling, poll_interval=POLL,
                         check_seconds=0.3, config_path=Path("/etc/psdwatch/test.toml"), **more)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --------------------------------------------------------------------------- pieces

def test_patterns_are_case_insensitive_globs():
    patterns = ("*.tif", "*.emi")
    assert matches("A.TIF", patterns) and matches("scan 01.Tif", patterns) and matches("x.emi", patterns)
    assert not matches("x.ser", patterns) and not matches("x.tif.part", patterns)


def test_auto_polls_on_network_mounts(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw,relatime 0 0\n"
        "//scope-pc/export /mnt/scope cifs rw,vers=3.0 0 0\n"
        "nas:/vol/tem /mnt/nas nfs4 rw 0 0\n"
        "me@host: /mnt/with\\040space fuse.sshfs rw 0 0\n"
        "tmpfs /mnt/scope/local tmpfs rw 0 0\n")
    assert mount_type(Path("/mnt/scope/s1"), mounts) == "cifs"
    assert mount_type(Path("/mnt/scopeX"), mounts) == "ext4"
    assert mount_type(Path("/mnt/with space/a"), mounts) == "fuse.sshfs"
    assert wants_polling("auto", Path("/mnt/scope/s1"), mounts)
    assert wants_polling("auto", Path("/mnt/nas"), mounts)
    assert wants_polling("auto", Path("/mnt/with space"), mounts)
    assert not wants_polling("auto", Path("/mnt/scope/local/x"), mounts)
    assert not wants_polling("auto", Path("/home/lab"), mounts)
    assert wants_polling(True, Path("/home"), mounts) and not wants_polling("false", Path("/mnt/nas"), mounts)
    with pytest.raises(ValueError):
        wants_polling("sometimes", Path("/"), mounts)


def test_auto_on_this_machine_reads_proc_mounts(tmp_path):
    # util-linux's findmnt is the independent witness of the mount type
    witness = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(tmp_path)],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert mount_type(tmp_path) == witness
    if witness in {"ext4", "xfs", "btrfs", "overlay", "tmpfs", "zfs"}:  # local: inotify works
        assert wants_polling("auto", tmp_path) is False
    elif witness in {"cifs", "smb3", "nfs", "nfs4"} or witness.startswith("fuse"):
        assert wants_polling("auto", tmp_path) is True


def test_settler_waits_for_a_growing_file(tmp_path):
    """Real writes and real stat calls; the settle clock is stepped by the test,
    so a loaded CI machine cannot stretch a writer's pause past the settle time."""
    path = tmp_path / "growing.tif"
    now = [100.0]
    settler = Settler(SETTLE, clock=lambda: now[0])

    def append() -> None:
        with open(path, "ab") as out:
            out.write(b"x" * 4096)

    append()
    settler.add(path)
    assert settler.check() == []                    # first look: version noted, not ready
    for _ in range(5):                              # a chunk each 0.9 settle: never quiet long enough
        now[0] += SETTLE * 0.9
        assert settler.check() == []
        append()
        now[0] += SETTLE * 0.2
        assert settler.check() == [], "a file that changed since the last look must wait again"
    assert len(settler) == 1
    now[0] += SETTLE * 0.99
    assert settler.check() == []                    # quiet, but not for settle_seconds yet
    now[0] += SETTLE * 0.02
    assert settler.check() == [(path, 6 * 4096, path.stat().st_mtime_ns)]
    assert len(settler) == 0


def test_settler_drops_known_versions_and_vanished_files(tmp_path):
    known_file, gone = tmp_path / "old.tif", tmp_path / "gone.tif"
    known_file.write_bytes(b"1234")
    gone.write_bytes(b"1")
    settler = Settler(0.1, known=lambda p, size, mtime: p == known_file)
    settler.add(known_file)
    settler.add(gone)
    assert settler.check() == [] and len(settler) == 1
    gone.unlink()
    time.sleep(0.15)
    assert settler.check() == [] and len(settler) == 0


# --------------------------------------------------------------------------- the watcher

@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_watcher_queues_each_complete_file_once(polling, share, db, tmp_path):
    (share / "s1").mkdir()
    (share / "s1" / "before.tif").write_bytes(b"a" * 1000)        # arrived while down
    (share / "s1" / "notes.txt").write_text("not an image")
    running = Running(settings_for(share, polling), db.conn.execute("PRAGMA database_list")
                      .fetchone()[2])
    try:
        assert wait_for(lambda: running.watcher.ready.is_set())
        assert running.watcher.polling is polling
        outside = tmp_path / "outside.tif"
        outside.write_bytes(b"m" * 777)
        finished: dict[str, float] = {}

        def grow() -> None:
            finished["s1/slow.tif"] = slow_write(share / "s1" / "slow.tif")

        writer = threading.Thread(target=grow)
        writer.start()
        (share / "LOOSE.TIF").write_bytes(b"b" * 10)                 # root: sample "unsorted"
        (share / "s2" / "deep").mkdir(parents=True)                   # a new folder with a file
        (share / "s2" / "deep" / "c.dm4").write_bytes(b"c" * 20)
        (share / "s1" / "x.ser").write_bytes(b"d" * 30)                # not matched
        os.rename(outside, share / "s2" / "moved_in.tif")             # moved in from elsewhere
        time.sleep(0.3)
        assert "s1/slow.tif" not in queued(db), "a growing file must not be queued"
        writer.join()
        want = {"s1/before.tif": ("s1", 1000), "s1/slow.tif": ("s1", 6 * 4096),
                "LOOSE.TIF": ("unsorted", 10), "s2/deep/c.dm4": ("s2", 20),
                "s2/moved_in.tif": ("s2", 777)}
        wait_for(lambda: set(queued(db)) == set(want))
        time.sleep(SETTLE + 2 * POLL)                                  # nothing more arrives
        rows = queued(db)
        assert {p: (r["sample"], r["size"]) for p, r in rows.items()} == want
        assert rows["s1/slow.tif"]["mtime_ns"] == (share / "s1" / "slow.tif").stat().st_mtime_ns
        assert listing(share) == {"s1", "s1/before.tif", "s1/notes.txt", "s1/slow.tif", "LOOSE.TIF",
                                  "s2", "s2/deep", "s2/deep/c.dm4", "s1/x.ser", "s2/moved_in.tif"}
    finally:
        running.close()


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_share_that_drops_and_returns_causes_no_requeue(polling, share, db, caplog):
    """Everything 'deleted' and 'created' again, the root gone for a while:
    versions already processed are not queued again; a new file is."""
    (share / "s1").mkdir()
    for i in range(5):
        (share / "s1" / f"{i}.tif").write_bytes(bytes([i]) * 100)
    db_path = db.conn.execute("PRAGMA database_list").fetchone()[2]
    running = Running(settings_for(share, polling), db_path)
    try:
        wait_for(lambda: len(queued(db)) == 5)
        while (job := store.claim_next(db)) is not None:              # the worker's part
            store.finish_done(db, job, f"sha-{job.path}", {"particles": [], "model": "classical"})
        away = share.with_name("share-offline")
        with caplog.at_level(logging.INFO, logger="psdwatch.watch"):
            os.rename(share, away)                                     # the share drops
            wait_for(lambda: "does not exist" in caplog.text)
            os.rename(away, share)                                     # and comes back
            wait_for(lambda: "is back" in caplog.text)
            wait_for(lambda: running.watcher.ready.is_set())
            time.sleep(SETTLE + 3 * POLL)
            assert queued(db) == {}
            (share / "s1" / "new.tif").write_bytes(b"n" * 50)
            wait_for(lambda: set(queued(db)) == {"s1/new.tif"})
        assert "[watch] root in /etc/psdwatch/test.toml" in caplog.text
    finally:
        running.close()


def test_missing_root_is_waited_for(share, db, caplog):
    root = share / "not-mounted-yet"
    db_path = db.conn.execute("PRAGMA database_list").fetchone()[2]
    with caplog.at_level(logging.INFO, logger="psdwatch.watch"):
        running = Running(settings_for(root, "auto"), db_path)
        try:
            wait_for(lambda: "does not exist" in caplog.text)
            assert running.thread.is_alive()
            message = next(r.getMessage() for r in caplog.records if "does not exist" in r.getMessage())
            assert str(root) in message and "/etc/psdwatch/test.toml" in message
            assert message.count("waiting") == 1
            (root / "s9").mkdir(parents=True)
            (root / "s9" / "a.tif").write_bytes(b"z" * 10)
            wait_for(lambda: set(queued(db)) == {"s9/a.tif"})
            assert list(queued(db).values())[0]["sample"] == "s9"
        finally:
            running.close()
    assert sum("does not exist" in r.getMessage() for r in caplog.records) == 1


def test_a_file_rewritten_after_it_settled_is_queued_as_new_version(share, db):
    db_path = db.conn.execute("PRAGMA database_list").fetchone()[2]
    running = Running(settings_for(share, False), db_path)
    try:
        wait_for(lambda: running.watcher.ready.is_set())
        target = share / "s1" / "a.tif"
        slow_write(target, chunks=2, pause=0.1)
        wait_for(lambda: "s1/a.tif" in queued(db))
        job = store.claim_next(db)
        store.finish_done(db, job, "v1", {"particles": [], "model": "classical"})
        shutil.copyfile(__file__, target)                               # replaced by new content
        size = target.stat().st_size
        wait_for(lambda: queued(db).get("s1/a.tif", {}).get("size") == size)
    finally:
        running.close()


def test_periodic_rescan_finds_what_events_missed(share, db):
    """Polling every 60 s sees nothing in time; the rescan safety net does."""
    db_path = db.conn.execute("PRAGMA database_list").fetchone()[2]
    settings = WatchSettings(root=share, patterns=("*.tif",), settle_seconds=0.3, polling=True,
                             poll_interval=60.0, rescan_seconds=0.5, check_seconds=0.3)
    running = Running(settings, db_path)
    try:
        wait_for(lambda: running.watcher.ready.is_set())
        (share / "late.tif").write_bytes(b"l" * 5)
        wait_for(lambda: set(queued(db)) == {"late.tif"}, timeout=10)
    finally:
        running.close()


def test_settings_from_the_real_config_loader(tmp_path):
    from psdwatch.daemon.config import load_config
    config_file = tmp_path / "psdwatch.toml"
    config_file.write_text('[watch]\nroot = "export"\npolling = true\npoll_interval = 1.5\n'
                           'settle_seconds = 4\npatterns = ["*.TIF"]\n')
    settings = WatchSettings.from_config(load_config(config_file))
    assert settings.root == tmp_path / "export" and settings.polling is True
    assert (settings.poll_interval, settings.settle_seconds, settings.patterns) == (1.5, 4.0, ("*.TIF",))
    assert settings.config_path == config_file
