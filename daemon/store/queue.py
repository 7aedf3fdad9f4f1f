"""The durable queue: files waiting to be measured, claimed one at a time.

A job is claimed (its attempt counted before the work, so that a file that kills
the worker is still counted), and ends with its image's outcome (outcomes.py),
goes back (released, deferred, handed back after a failed write), or is
recovered at the next start.
"""

from __future__ import annotations

import sqlite3
import time

from sqlite_utils import Database

from .schema import Job, now, write_transaction

MAX_DEFER_SECONDS = 600.0
JOB_SELECT = "SELECT id, path, sample, size, mtime_ns, attempts, sha256 FROM queue"
_NEXT = "WHERE state = 'queued' AND IFNULL(not_before, 0) <= ? ORDER BY id LIMIT 1"  # the next job to take


def is_known(db: Database, relpath: str, size: int, mtime_ns: int) -> bool:
    """True when this version of the file (same size and mtime) is already
    queued or has its row: the cheap filter that keeps catch-up scans and the
    event storms of a reconnecting share from queueing work twice."""
    for table in ("images", "queue"):
        row = db.execute(f"SELECT 1 FROM {table} WHERE path = ? AND size = ? AND mtime_ns = ?",
                         [relpath, size, mtime_ns]).fetchone()
        if row:
            return True
    return False


def enqueue(db: Database, relpath: str, sample: str, size: int | None = None,
            mtime_ns: int | None = None, *, force: bool = False) -> bool:
    """Queue a settled file; idempotent. Returns whether anything changed.

    A file whose version is already known is not queued again unless `force`
    (reprocessing on purpose). A queued entry whose file changed again gets the
    new size/mtime and fresh attempts. An entry being processed keeps its state
    but records the new version, so that finishing the old one re-queues it.
    """
    with write_transaction(db):
        if not force and is_known(db, relpath, size, mtime_ns):
            return False
        row = db.execute("SELECT id, state, size, mtime_ns FROM queue WHERE path = ?",
                         [relpath]).fetchone()
        if row is None:
            db["queue"].insert({"path": relpath, "sample": sample, "size": size,
                                "mtime_ns": mtime_ns, "state": "queued", "attempts": 0,
                                "enqueued_at": now()})
            return True
        queue_id, state, old_size, old_mtime = row
        if (old_size, old_mtime) == (size, mtime_ns):
            return False
        attempts = "attempts" if state == "processing" else "0"
        db.execute(f"UPDATE queue SET size = ?, mtime_ns = ?, sample = ?, attempts = {attempts}, "
                   f"sha256 = NULL WHERE id = ?", [size, mtime_ns, sample, queue_id])
        return True


def peek_next(db: Database) -> Job | None:
    """The job claim_next would take now, left queued: the one the service may read ahead."""
    row = db.execute(f"{JOB_SELECT} {_NEXT}", [time.time()]).fetchone()
    return None if row is None else Job(*row)


def claim_next(db: Database) -> Job | None:
    """The oldest queued job, marked processing with its attempt counted.

    The attempt is counted *before* the work, so that a file that kills the
    worker is still counted; recover_after_crash reads that count."""
    with write_transaction(db):
        row = db.execute(f"{JOB_SELECT} {_NEXT}", [time.time()]).fetchone()
        if row is None:
            return None
        db.execute("UPDATE queue SET state = 'processing', attempts = attempts + 1, "
                   "claimed_at = ? WHERE id = ?", [now(), row[0]])
        row = db.execute(f"{JOB_SELECT} WHERE id = ?", [row[0]]).fetchone()
        return Job(*row)


def note_sha256(db: Database, job: Job, sha256: str) -> None:
    """Remember the content hash before analysing, so that a file that crashes
    the worker is quarantined *with* its hash (and recognised if it reappears)."""
    with write_transaction(db):
        db.execute("UPDATE queue SET sha256 = ? WHERE id = ?", [sha256, job.id])


def release(db: Database, job: Job, defer_s: float = 0.0) -> None:
    """Put a claimed job back without counting the attempt (shutdown, the file
    changed under the worker, a share error). With `defer_s` the job waits that
    long, doubled at each deferral up to MAX_DEFER_SECONDS: a file that is
    rewritten for minutes must not be taken first again and again, ahead of
    every other file."""
    with write_transaction(db):
        db.execute("UPDATE queue SET state = 'queued', attempts = MAX(attempts - 1, 0), claimed_at = NULL, "
                   "not_before = CASE WHEN ? > 0 THEN ? + MIN(?, ? * (1 << MIN(IFNULL(deferrals, 0), 10))) "
                   "ELSE not_before END, deferrals = IFNULL(deferrals, 0) + (? > 0) WHERE id = ?",
                   [defer_s, time.time(), MAX_DEFER_SECONDS, defer_s, defer_s, job.id])


def close_job(db: Database, job: Job) -> None:
    """Remove the entry, unless the file changed since the claim: then the new
    version waits in the queue with fresh attempts."""
    row = db.execute("SELECT size, mtime_ns FROM queue WHERE id = ?", [job.id]).fetchone()
    if row is None:
        return
    if tuple(row) == (job.size, job.mtime_ns):
        db.execute("DELETE FROM queue WHERE id = ?", [job.id])
    else:
        db.execute("UPDATE queue SET state = 'queued', attempts = 0, sha256 = NULL, "
                   "claimed_at = NULL WHERE id = ?", [job.id])


def requeue(db: Database, job: Job) -> None:
    """Put a claimed job back as it was claimed (its content needs processing
    after all); runs inside the caller's write_transaction."""
    db.execute("UPDATE queue SET state = 'queued', claimed_at = NULL WHERE id = ?", [job.id])


def processing_jobs(db: Database) -> list[Job]:
    """The jobs left 'processing' (interrupted by a crash), oldest first."""
    return [Job(*row) for row in db.execute(f"{JOB_SELECT} WHERE state = 'processing' ORDER BY id").fetchall()]


def drop_job(db: Database, job: Job) -> None:
    """Remove a job whatever its file did meanwhile; inside the caller's write_transaction."""
    db.execute("DELETE FROM queue WHERE id = ?", [job.id])


def hand_back_claimed(db: Database) -> None:
    """Every claimed job back to the queue without counting the attempt: its
    result could not be written (a full disk, a store locked by another
    program), which is not the file's fault."""
    with write_transaction(db):
        db.execute("UPDATE queue SET state = 'queued', attempts = MAX(attempts - 1, 0), "
                   "claimed_at = NULL WHERE state = 'processing'")


def queue_busy(db: Database) -> bool:
    """Whether any file waits or is being measured (the reports wait for a quiet moment)."""
    return db.execute("SELECT 1 FROM queue WHERE state IN ('queued', 'processing') LIMIT 1").fetchone() is not None


def queue_counts(db: Database) -> dict[str, int]:
    """Jobs by state; empty for a store written by an older version without a queue."""
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM queue GROUP BY state").fetchall())
    except sqlite3.Error:
        return {}
