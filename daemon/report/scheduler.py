"""The reports, beside the measuring and never in its way.

The worker only stores: an image's row, its particles and its sample's kept
numbers (sample_stats), in one transaction. Triggers mark the sample's pages
due (`report_dirty`). This thread, with its own store connection, redraws the
marked samples' pages and then the index when the queue is empty, and while it
is not at most every `[reports] interval` seconds; so a burst of a thousand
images costs a few page builds, not a thousand.

A report that cannot be written (a read-only or full reports folder) stops
nothing: the marks stay, the failure is kept in `report_health` (what
`psdwatch status` shows) and logged once a minute, and the thread tries again.
The same holds for an image's thumbnail and view: drawn while the pixels are in
memory, they wait in `pending_files` when they cannot be written, and are written
here once the folder can take them. The thread also runs the check for files
deleted from the share (missing_scan), in short slices.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from . import index as report
from ..store import core as store
from ..store.report_health import note_failure, note_ok, write as _write
from ..logging_once import OncePerMinute
from ..watch.missing_scan import MissingScan
from .sample_page import write_sample_report
from ...pipeline.io.files import write_atomic

log = logging.getLogger("psdwatch.report")

POLL_S = 0.25


# --------------------------------------------------------------------------- pictures

def keep_picture(db, name: str, data: bytes) -> None:
    """A thumbnail or view that could not be written now: kept in the store until it can."""
    _write(db, "INSERT OR REPLACE INTO pending_files (name, data, queued_at) VALUES (?, ?, ?)",
           [name, data, store.now()])


def flush_pictures(db, reports_dir: Path) -> int:
    """Write the pictures that waited; returns how many. An OSError goes to the caller."""
    written = 0
    while rows := db.execute("SELECT name, data FROM pending_files ORDER BY queued_at LIMIT 50").fetchall():
        for name, data in rows:  # fifty at a time: a long outage may have kept thousands
            write_atomic(Path(reports_dir) / name, data)
            _write(db, "DELETE FROM pending_files WHERE name = ?", [name])
        written += len(rows)
    return written


# --------------------------------------------------------------------------- pages

def mark_stale(db, reports_dir: Path) -> int:
    """Mark the samples whose page is missing or behind the store (a run killed
    between storing and drawing, pages deleted by hand). At start."""
    stale = report.stale_samples(db, reports_dir)
    with store.write_transaction(db):
        db.conn.executemany("INSERT INTO report_dirty (sample, marks) VALUES (?, 1) ON CONFLICT(sample) "
                            "DO UPDATE SET marks = marks + 1", [(s,) for s in stale])
    return len(stale)


def rebuild_due(db, reports_dir: Path, *, min_particles: int = 100, bootstrap: int = 1000, page_images: int = 500,
                samples: list[str] | None = None, everything: bool = False) -> int:
    """Redraw the marked samples' pages (those of `samples`, or of every sample,
    with `everything`), then the index; a sample's mark is cleared only if no
    image came in meanwhile. A CSV is rewritten only where its mark says an
    image already in it changed, else appended to. Returns the number of pages
    drawn. OSError and sqlite3.Error go to the caller."""
    if samples is not None and not samples and not everything:
        due = []
    elif everything or samples is not None:
        chosen = "" if everything else f"AND c.sample IN ({', '.join('?' * len(samples))})"
        due = db.execute("SELECT c.sample, d.marks, IFNULL(d.rewrite_csv, 0) FROM sample_counts c LEFT JOIN "
                         f"report_dirty d ON d.sample = c.sample WHERE c.images > 0 {chosen} ORDER BY c.sample",
                         [] if everything else list(samples)).fetchall()
    else:
        due = db.execute("SELECT sample, marks, rewrite_csv FROM report_dirty ORDER BY sample").fetchall()
    for sample, marks, rewrite in due:
        write_sample_report(db, sample, reports_dir, bootstrap=bootstrap, min_particles=min_particles,
                            page_images=page_images, rewrite_csv=bool(rewrite))
        if marks is not None:
            _write(db, "DELETE FROM report_dirty WHERE sample = ? AND marks = ?", [sample, marks])
    if due or everything or samples is not None:
        report.write_index(db, reports_dir, min_particles=min_particles)
    return len(due)


def write_reports(db, reports_dir: Path, samples: list[str] | None = None, **psd_settings) -> Path:
    """`psdwatch report`: rebuild the pages of `samples` (all when None), then
    the index. Returns the index path."""
    rebuild_due(db, reports_dir, samples=samples, everything=samples is None, **psd_settings)
    return Path(reports_dir) / "index.html"


def _queue_busy(db) -> bool:
    return db.execute("SELECT 1 FROM queue WHERE state IN ('queued', 'processing') LIMIT 1").fetchone() is not None


class ReportScheduler:
    """The report thread of `psdwatch run`."""

    def __init__(self, config: dict, min_particles: int, bootstrap: int, stop: threading.Event):
        self.config, self.stop = config, stop
        self.reports_dir = Path(config["reports"]["dir"])
        self.psd = {"min_particles": min_particles, "bootstrap": bootstrap,
                    "page_images": config["reports"]["page_images"]}
        self.interval = config["reports"]["interval"]
        self.missing = MissingScan(config["watch"]["root"], config["watch"]["rescan_seconds"])
        self.thread = threading.Thread(target=self.run, name="reports", daemon=True)
        self.failing = False

    def start(self) -> "ReportScheduler":
        self.thread.start()
        return self

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)

    def run(self) -> None:
        db = store.open_store(self.config["store"]["database"], self.config["store"]["busy_timeout"])
        once = OncePerMinute(log)
        last_build = -1e18
        try:  # pages behind the store (a run killed between storing and drawing), and the index
            mark_stale(db, self.reports_dir)
            if not rebuild_due(db, self.reports_dir, **self.psd):
                report.write_index(db, self.reports_dir, min_particles=self.psd["min_particles"])
        except (OSError, sqlite3.Error) as error:
            self._failed(db, once, error)
        while not self.stop.wait(POLL_S):
            try:
                flush_pictures(db, self.reports_dir)
                busy = _queue_busy(db)
                if not busy or time.monotonic() - last_build >= self.interval:
                    if rebuild_due(db, self.reports_dir, **self.psd):
                        last_build = time.monotonic()
                    if self.failing:
                        log.info("reports: written again")
                    self._ok(db)
                if not busy:
                    self.missing.step(db)
            except (OSError, sqlite3.Error) as error:
                self._failed(db, once, error)
                self.stop.wait(5)
        try:  # stopping: what is due is drawn now (bounded by the samples marked), not at the next start
            rebuild_due(db, self.reports_dir, **self.psd)
        except (OSError, sqlite3.Error) as error:
            log.warning("reports not brought up to date before stopping (%s): the next start does it", error)
        db.close()

    def _failed(self, db, once: OncePerMinute, error: BaseException) -> None:
        self.failing = True
        once.error(f"reports cannot be written ({error}); measuring goes on, the pages "
                   "follow when they can be written (retrying every 5 s)")
        try:
            note_failure(db, "reports", error)
        except sqlite3.Error:  # the store is busy or full too: the log has it
            pass

    def _ok(self, db) -> None:
        """A round went through: clear a failure kept by this thread or by the worker
        (a picture it could not write)."""
        kept = db.execute("SELECT failing_since FROM report_health WHERE id = 1").fetchone()
        if self.failing or (kept and kept[0]):
            note_ok(db)
        self.failing = False
