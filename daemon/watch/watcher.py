"""Watch the export share and queue each image file once it is complete.

Events only say "look at this path": they feed a set of candidates, and a
settle loop decides. A file is handed on only after its size and mtime have
stayed the same for settle_seconds, so a file still being written waits. This
makes the watcher indifferent to how events arrive (inotify, polling, a catch-up
scan, the storm of a share that reconnects): duplicates of a path collapse in
the set, and a version already known to the store is dropped at its first
look, before any waiting or hashing.

The watch root is read-only to psdwatch: nothing here opens a file for
writing, creates, moves or deletes anything under it.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from watchdog.events import (DirCreatedEvent, DirMovedEvent, FileSystemEvent,
                             FileSystemEventHandler, FileSystemMovedEvent)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver
from ..logging_once import OncePerMinute

log = logging.getLogger("psdwatch.watch")

# Mount types that deliver no (or not all) inotify events: watched by polling.
NETWORK_FS = {"cifs", "smb3", "smbfs", "nfs", "nfs4", "9p", "afs", "ceph", "glusterfs",
              "lustre", "gpfs", "davfs", "vboxsf", "drvfs", "virtiofs"}

Settled = Callable[[Path, int, int], None]      # (path, size, mtime_ns)
Known = Callable[[Path, int, int], bool]


@dataclass
class WatchSettings:
    root: Path
    patterns: tuple[str, ...] = ("*.tif", "*.tiff")
    settle_seconds: float = 2.0
    polling: bool | str = "auto"
    poll_interval: float = 5.0
    rescan_seconds: float = 600.0   # safety net for lost events; 0 = off
    check_seconds: float = 2.0      # how often the root's health is checked
    config_path: Path | None = None
    mounts_file: Path = Path("/proc/mounts")

    @classmethod
    def from_config(cls, config: dict) -> "WatchSettings":
        watch = config["watch"]
        return cls(root=Path(watch["root"]), patterns=tuple(watch["patterns"]),
                   settle_seconds=watch["settle_seconds"], polling=watch["polling"],
                   poll_interval=watch["poll_interval"], rescan_seconds=watch["rescan_seconds"],
                   config_path=config.get("_path"))


# --------------------------------------------------------------------------- choosing

def matches(name: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive glob on the file name: microscopes write .TIF as often as .tif."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_type(path: Path, mounts_file: Path = Path("/proc/mounts")) -> str | None:
    """The file system type of the mount holding `path` (longest matching mount point)."""
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in Path(mounts_file).read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type


def wants_polling(setting: bool | str, root: Path, mounts_file: Path = Path("/proc/mounts")) -> bool:
    """[watch] polling: true, false or "auto". Auto polls on network and FUSE
    mounts (no inotify events from other machines' writes) and when the mount
    type cannot be read: polling is slower but never misses a file."""
    if isinstance(setting, bool):
        return setting
    text = str(setting).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    if text != "auto":
        raise ValueError(f"[watch] polling must be true, false or \"auto\", not {setting!r}")
    try:
        kind = mount_type(root, mounts_file)
    except OSError as error:
        log.warning("cannot read %s (%s): polling %s to be safe", mounts_file, error, root)
        return True
    return kind is None or kind in NETWORK_FS or kind.startswith("fuse")


def root_problem(root: Path) -> str | None:
    """Why the root cannot be watched now, or None when it can."""
    try:
        info = os.stat(root)
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        return f"cannot be reached ({error.strerror or error})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    try:
        with os.scandir(root) as entries:
            next(entries, None)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    return None


def root_identity(root: Path) -> tuple[int, int] | None:
    """(device, inode): changes when a share is unmounted and mounted again,
    which leaves an inotify watch on a directory that no longer receives anything."""
    try:
        info = os.stat(root)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def scan(folder: Path, patterns: Iterable[str]) -> Iterator[Path]:
    """Every matching file below `folder`: the catch-up for what arrived while
    nobody watched. Unreadable subfolders are logged, not fatal."""
    patterns = tuple(patterns)

    def report(error: OSError) -> None:
        log.warning("cannot list %s: %s", error.filename, error.strerror or error)

    for dirpath, _dirs, files in os.walk(folder, onerror=report):
        for name in files:
            if matches(name, patterns):
                yield Path(dirpath) / name


# --------------------------------------------------------------------------- settling

class Settler:
    """The candidates and their last observed (size, mtime_ns).

    Thread-safe: add() is called from watchdog's thread, check() from the
    watcher's. A candidate is looked at when it is due: at once when new, then
    settle_seconds after its last change.
    """

    def __init__(self, settle_seconds: float, known: Known | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settle_seconds = settle_seconds
        self.known = known
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[Path, tuple[int, int, float] | None] = {}  # path -> (size, mtime_ns, since)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def add(self, path: Path) -> None:
        with self._lock:
            self._seen.setdefault(Path(path), None)

    def check(self) -> list[tuple[Path, int, int]]:
        """The candidates that have now settled, removed from the set."""
        now = self.clock()
        with self._lock:
            due = [(p, s) for p, s in self._seen.items()
                   if s is None or now - s[2] >= self.settle_seconds]
        ready = []
        for path, seen in due:
            try:
                info = os.stat(path)
            except FileNotFoundError:
                self._drop(path)  # deleted, or renamed away: an event brings it back
                continue
            except OSError as error:
                if seen is None or seen[0] != -1:  # say it once, look again after settling
                    log.warning("cannot stat %s (%s): will look again", path, error.strerror or error)
                self._set(path, (-1, -1, now))
                continue
            if not stat.S_ISREG(info.st_mode):
                self._drop(path)
                continue
            version = (info.st_size, info.st_mtime_ns)
            if seen is None:
                if self._known(path, version):
                    self._drop(path)
                else:
                    self._set(path, (*version, now))
            elif version != seen[:2]:
                self._set(path, (*version, now))  # still growing: wait again
            else:
                self._drop(path)
                ready.append((path, *version))
        return ready

    def _known(self, path: Path, version: tuple[int, int]) -> bool:
        """A failing check (a bug, a store error) must not stop the watcher:
        the file is then treated as new, and the store decides."""
        if self.known is None:
            return False
        try:
            return self.known(path, *version)
        except Exception:  # noqa: BLE001
            log.exception("cannot tell whether %s is known; treating it as new", path)
            return False

    def _set(self, path: Path, value) -> None:
        with self._lock:
            self._seen[path] = value

    def _drop(self, path: Path) -> None:
        with self._lock:
            self._seen.pop(path, None)


class _Events(FileSystemEventHandler):
    """Turns watchdog events into candidates; deletions are ignored on purpose
    (a share that drops looks like everything deleted)."""

    def __init__(self, settler: Settler, patterns: tuple[str, ...]):
        self.settler = settler
        self.patterns = patterns

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        path = event.dest_path if isinstance(event, FileSystemMovedEvent) else event.src_path
        path = Path(os.fsdecode(path))
        if isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            for found in scan(path, self.patterns):  # a folder moved in brings its files
                self.settler.add(found)
        elif not event.is_directory and matches(path.name, self.patterns):
            self.settler.add(path)


# --------------------------------------------------------------------------- watcher

class Watcher:
    """Runs until `stop` is set, surviving a root that is missing at start, that
    disappears, or that is mounted again; settled files go to on_settled (in
    the thread that called run(), so it may own a store connection)."""

    def __init__(self, settings: WatchSettings, on_settled: Settled, known: Known | None = None):
        self.settings = settings
        self.on_settled = on_settled
        self.settler = Settler(settings.settle_seconds, known)
        self.polling: bool | None = None  # what the current observer does, for logs and tests
        self.ready = threading.Event()    # set once the observer runs and catch-up is queued
        self._once = OncePerMinute(log)  # repeated error lines

    def run(self, stop: threading.Event) -> None:
        lost = None
        while not stop.is_set():
            if not self._wait_for_root(stop, lost):
                return
            observer = self._start_observer()
            try:
                lost = self._watch(observer, stop)
            finally:
                self.ready.clear()
                observer.stop()
                observer.join(timeout=10)

    def _say_lost(self, problem: str) -> None:
        s = self.settings
        log.error("watch root %s %s ([watch] root in %s); waiting for it to come back, "
                  "checking every %g s", s.root, problem, s.config_path, s.check_seconds)

    def _wait_for_root(self, stop: threading.Event, lost: str | None) -> bool:
        """Block until the root can be read; says so once when it goes, once when it is back."""
        said = lost is not None
        while (problem := root_problem(self.settings.root)) is not None:
            if not said:
                self._say_lost(problem)
                said = True
            if stop.wait(self.settings.check_seconds):
                return False
        if said:
            log.warning("watch root %s is back: watching it again", self.settings.root)
        return True

    def _start_observer(self) -> BaseObserver:
        s = self.settings
        self.polling = wants_polling(s.polling, s.root, s.mounts_file)
        handler = _Events(self.settler, s.patterns)
        while True:
            observer = PollingObserver(timeout=s.poll_interval) if self.polling else Observer()
            observer.schedule(handler, str(s.root), recursive=True)
            try:
                observer.start()
                break
            except OSError as error:  # e.g. the inotify watch limit of a huge tree
                if self.polling:
                    raise
                log.warning("inotify cannot watch %s (%s): polling instead", s.root, error)
                self.polling = True
        log.info("watching %s (%s, settle %g s)", s.root,
                 f"polling every {s.poll_interval:g} s" if self.polling else "inotify",
                 s.settle_seconds)
        return observer

    def catch_up(self) -> int:
        """Queue every matching file under the root as a candidate; returns how many."""
        n = 0
        for n, path in enumerate(scan(self.settings.root, self.settings.patterns), 1):
            self.settler.add(path)
        return n

    def _watch(self, observer: BaseObserver, stop: threading.Event) -> str | None:
        """Settle candidates until stopped (None) or the root is lost (why).
        Observer first, then the scan: a file arriving in between is seen by one or both."""
        s = self.settings
        identity = root_identity(s.root)
        log.info("catch-up scan of %s: %d matching files", s.root, self.catch_up())
        self.ready.set()
        tick = max(0.05, min(0.25, s.settle_seconds / 4))
        last_check = last_scan = time.monotonic()
        while not stop.wait(tick):
            self._hand_on(self.settler.check())
            now = time.monotonic()
            if now - last_check >= s.check_seconds:
                last_check = now
                problem = root_problem(s.root)
                if problem is None and root_identity(s.root) != identity:
                    problem = "was mounted again"
                if problem is not None or not observer.is_alive():
                    problem = problem or "lost its observer"
                    self._say_lost(problem)
                    return problem
            if s.rescan_seconds and now - last_scan >= s.rescan_seconds:
                last_scan = now
                self.catch_up()
        return None

    def _hand_on(self, ready: list[tuple[Path, int, int]]) -> None:
        for path, size, mtime_ns in ready:
            try:
                self.on_settled(path, size, mtime_ns)
            except (sqlite3.OperationalError, OSError) as error:  # store busy or disk full: later
                self._once.error(f"cannot queue new files yet ({error}); will try again")
                self.settler.add(path)
            except Exception:  # a bug: say it with its traceback, and try again later
                log.exception("could not queue %s; will try again", path)
                self.settler.add(path)

# --------------------------------------------------------------------------- into the store

class StoreIntake:
    """The watcher's two callbacks bound to a store connection: settled files
    become queue entries under their sample (DESIGN's sample rule)."""

    def __init__(self, db, root: Path, sample_pattern: str | None = None):
        from . import samples
        from ..store import core as store  # noqa: PLC0415  (keeps watch usable without a store)
        self._store, self._samples = store, samples
        self.db, self.root, self.sample_pattern = db, Path(root), sample_pattern

    def _relative(self, path: Path) -> str | None:
        rel = self._samples.relative_path(path, self.root)
        if rel is None:
            log.warning("%s resolves outside the watch root %s: ignored", path, self.root)
        return rel

    def known(self, path: Path, size: int, mtime_ns: int) -> bool:
        rel = self._relative(path)
        return rel is None or self._store.is_known(self.db, rel, size, mtime_ns)

    def on_settled(self, path: Path, size: int, mtime_ns: int) -> None:
        rel = self._relative(path)
        if rel is None:
            return
        sample = self._samples.sample_of(path, self.root, self.sample_pattern)
        if self._store.enqueue(self.db, rel, sample, size, mtime_ns):
            log.info("queued %s (sample %s, %d bytes)", rel, sample, size)
