"""The SQLite store: the durable queue, one row per image file, its particles.

One file in WAL mode, so that people can open it with sqlite-utils or Datasette
while the service writes: readers see a consistent snapshot and never block the
writer. Every write here is one short `BEGIN IMMEDIATE` transaction; IMMEDIATE
takes the write lock up front, so two writers (the watcher enqueuing, the worker
finishing) wait for each other through busy_timeout instead of failing with
SQLITE_BUSY half-way through a read-then-write.

Rules kept here, so that no caller can break them (DESIGN):
- `images` has exactly one row per file, i.e. per path relative to the watch
  root (unique index). A row follows its file's *current* content: when a file
  is replaced by new content under the same name, the same row (same id) is
  rewritten with the new result and the old version is archived in
  `images_history`. Deleting a file from the share changes nothing here.
- The same content (sha256) is 'done' at most once per sample (partial unique
  index); another file with that content in that sample becomes 'duplicate'
  with `duplicate_of` pointing at the 'done' row, and has no particles.
- When the 'done' row that duplicates point at gets new content, the first
  duplicate is promoted to 'done' and inherits the particles (same bytes, same
  particles), so the sample's PSD neither loses nor double-counts that content.
- An image's row, all its particles and the removal of its queue entry are one
  transaction: after a crash there is either all of it or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, NamedTuple

from sqlite_utils import Database

from . import sample_stats
from ...pipeline import __version__ as SOFTWARE_VERSION
from ...pipeline.measure.schema import PARTICLE_SCHEMA

STATUSES = ("done", "quarantined", "duplicate", "skipped")

IMAGE_COLUMNS = {
    "id": int, "path": str, "sample": str, "sha256": str, "status": str, "reason": str,
    "duplicate_of": int, "nm_per_px": float, "scale_source": str, "scale_text": str,
    "model": str, "model_sha256": str, "engine": str, "software_version": str,
    "seconds": float, "n_particles": int, "flags": str, "psd": str, "scale_details": str,
    "size": int, "mtime_ns": int, "attempts": int, "processed_at": str,
    # When the file was found gone from the share (UTC ISO); its result stays.
    "missing_since": str,
}
# The result of processing one content: what a promoted duplicate inherits.
RESULT_COLUMNS = ("nm_per_px", "scale_source", "scale_text", "model", "model_sha256", "engine",
                  "software_version", "seconds", "n_particles", "flags", "psd", "scale_details",
                  "processed_at")
# From the one particle schema; the particle's own number (its "id" in the JSON)
# is stored as `number`, beside the table's primary key and the image it belongs to.
PARTICLE_COLUMNS = {"id": int, "image_id": int, "number": int,
                    **{c.name: c.type for c in PARTICLE_SCHEMA if c.name != "id"}}
QUEUE_COLUMNS = {
    "id": int, "path": str, "sample": str, "size": int, "mtime_ns": int, "state": str,
    "attempts": int, "sha256": str, "enqueued_at": str, "claimed_at": str,
    # A job put back because its file kept changing (or the share failed) waits
    # until not_before (Unix time), longer each time, so the others go first.
    "not_before": float, "deferrals": int,
}
MAX_DEFER_SECONDS = 600.0
HISTORY_COLUMNS = {
    "id": int, "image_id": int, "path": str, "sample": str, "sha256": str, "status": str,
    "reason": str, "duplicate_of": int, "n_particles": int, "model": str, "nm_per_px": float,
    "processed_at": str, "replaced_at": str, "replaced_because": str,
}


@dataclass(frozen=True)
class Job:
    """A claimed queue entry, as it was when claimed (size/mtime identify the version)."""
    id: int
    path: str
    sample: str
    size: int | None
    mtime_ns: int | None
    attempts: int
    sha256: str | None = None


class Finished(NamedTuple):
    image_id: int
    status: str


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """One BEGIN IMMEDIATE ... COMMIT; sqlite-utils calls inside nest as savepoints,
    and so does a write_transaction inside another."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


# --------------------------------------------------------------------------- schema

def _ensure_table(db: Database, name: str, columns: dict, **kwargs) -> None:
    table = db[name]
    if not table.exists():
        table.create(columns, pk="id", **kwargs)
        return
    have = table.columns_dict
    for column, kind in columns.items():  # forward upgrades only add columns
        if column not in have:
            table.add_column(column, kind)


def _create_schema(db: Database) -> None:
    _ensure_table(db, "images", IMAGE_COLUMNS, not_null={"path", "sample", "status"},
                  foreign_keys=[("duplicate_of", "images", "id")])
    _ensure_table(db, "particles", PARTICLE_COLUMNS, not_null={"image_id"},
                  foreign_keys=[("image_id", "images", "id")])
    _ensure_table(db, "queue", QUEUE_COLUMNS, not_null={"path", "sample", "state"},
                  defaults={"attempts": 0})
    _ensure_table(db, "images_history", HISTORY_COLUMNS)
    db["images"].create_index(["path"], unique=True, if_not_exists=True)
    db["images"].create_index(["sample", "status"], if_not_exists=True)
    db["images"].create_index(["duplicate_of"], if_not_exists=True)
    # status's "latest model" and a sample's latest images without scanning (issue 26)
    db["images"].create_index(["processed_at"], if_not_exists=True)
    db["images"].create_index(["sample", "id"], if_not_exists=True)
    db["particles"].create_index(["image_id"], if_not_exists=True)
    db["queue"].create_index(["path"], unique=True, if_not_exists=True)
    db["queue"].create_index(["state", "id"], if_not_exists=True)
    # DESIGN: the same content is 'done' at most once per sample. sqlite-utils
    # has no partial indexes, hence plain SQL.
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS images_done_content "
               "ON images(sample, sha256) WHERE status = 'done'")
    sample_stats.ensure(db)


def open_store(path: str | Path, busy_timeout: float = 30.0) -> Database:
    """The store at `path`, created if needed. One connection per thread.

    busy_timeout is how long a write waits for another writer (the other
    thread of the service, or a person writing with sqlite-utils) before it
    fails; readers never hold it up in WAL mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(sqlite3.connect(str(path), timeout=busy_timeout))
    db.enable_wal()
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA synchronous = FULL")  # a commit survives power loss, not only kill -9
    with write_transaction(db):
        _create_schema(db)
    return db


def open_store_readonly(path: str | Path, busy_timeout: float = 10.0) -> Database:
    """The store for reading only (`psdwatch status`): no schema check, no write
    lock, so it answers at once beside a busy service."""
    return Database(sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=busy_timeout))


# --------------------------------------------------------------------------- queue

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


def _job(row: tuple) -> Job:
    return Job(*row)


JOB_SELECT = "SELECT id, path, sample, size, mtime_ns, attempts, sha256 FROM queue"


_NEXT = "WHERE state = 'queued' AND IFNULL(not_before, 0) <= ? ORDER BY id LIMIT 1"  # the next job to take


def peek_next(db: Database) -> Job | None:
    """The job claim_next would take now, left queued: the one the service may read ahead."""
    row = db.execute(f"{JOB_SELECT} {_NEXT}", [time.time()]).fetchone()
    return None if row is None else _job(row)


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
        return _job(row)


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


def _close_job(db: Database, job: Job) -> None:
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


def recover_after_crash(db: Database, max_attempts: int = 3) -> dict:
    """Run once at start, before any worker: jobs left 'processing' were
    interrupted. They are retried, except those that have now been claimed
    max_attempts times, which are quarantined instead of crashing the service
    forever. Returns {"requeued": n, "quarantined": n}."""
    with write_transaction(db):
        rows = db.execute(f"{JOB_SELECT} WHERE state = 'processing' ORDER BY id").fetchall()
        result = {"requeued": 0, "quarantined": 0}
        for job in map(_job, rows):
            if job.attempts >= max_attempts:
                _put_image(db, job, {"status": "quarantined", "sha256": job.sha256,
                                     "reason": f"crashed {job.attempts} times while processing"})
                db.execute("DELETE FROM queue WHERE id = ?", [job.id])
                result["quarantined"] += 1
            else:
                db.execute("UPDATE queue SET state = 'queued', claimed_at = NULL WHERE id = ?",
                           [job.id])
                result["requeued"] += 1
        return result


# --------------------------------------------------------------------------- outcomes

def is_duplicate(db: Database, sample: str, sha256: str, exclude_path: str | None = None) -> int | None:
    """The id of the 'done' image with this content in this sample, or None.
    exclude_path: the file's own row (reprocessing a file is not a duplicate of itself)."""
    row = db.execute("SELECT id FROM images WHERE sample = ? AND sha256 = ? AND status = 'done' "
                     "AND path IS NOT ?", [sample, sha256, exclude_path]).fetchone()
    return row[0] if row else None


def _archive(db: Database, old: dict, because: str) -> None:
    db["images_history"].insert({
        **{k: old[k] for k in HISTORY_COLUMNS if k in old and k != "id"},
        "image_id": old["id"], "replaced_at": now(), "replaced_because": because})


def _hand_over(db: Database, old: dict) -> tuple[int, dict] | None:
    """`old`, a 'done' row, is about to hold other content: give its particles to
    its first duplicate (the heir) and point the other duplicates at the heir.
    Returns the heir's id and the row update that makes it 'done'; the caller
    applies it once `old` no longer claims the content (one 'done' per content)."""
    dups = [r[0] for r in db.execute("SELECT id FROM images WHERE duplicate_of = ? ORDER BY id",
                                     [old["id"]])]
    if not dups:
        sample_stats.drop_image(db, old["id"])
        db.execute("DELETE FROM particles WHERE image_id = ?", [old["id"]])
        return None
    heir = dups[0]
    sample_stats.move_image(db, old["id"], heir)
    db.execute("UPDATE particles SET image_id = ? WHERE image_id = ?", [heir, old["id"]])
    db.execute("UPDATE images SET duplicate_of = ? WHERE duplicate_of = ? AND id != ?",
               [heir, old["id"], heir])
    return heir, {**{k: old[k] for k in RESULT_COLUMNS}, "status": "done", "duplicate_of": None,
                  "reason": f"promoted: same content as {old['path']}, which was replaced"}


def _as_duplicate(fields: dict, of_image_id: int) -> dict:
    """A row that records the file and points at the content's 'done' row; no result."""
    cleared = {k: None for k in RESULT_COLUMNS if k not in ("processed_at", "seconds")}
    return {**fields, **cleared, "status": "duplicate", "duplicate_of": of_image_id,
            "reason": f"same content as image {of_image_id}", "software_version": SOFTWARE_VERSION}


def _put_image(db: Database, job: Job, fields: dict, particles: list[dict] = ()) -> Finished:
    """Write the row of job.path (insert, or rewrite in place) and its particles.
    Runs inside the caller's write_transaction."""
    fields = {**{k: None for k in IMAGE_COLUMNS if k != "id"},
              "path": job.path, "sample": job.sample, "size": job.size, "mtime_ns": job.mtime_ns,
              "attempts": job.attempts, "processed_at": now(), **fields}
    if fields["status"] == "done":
        first = is_duplicate(db, job.sample, fields["sha256"], exclude_path=job.path)
        if first is not None:  # the same content was finished meanwhile under another name
            fields, particles = _as_duplicate(fields, first), ()
    old = image_of_path(db, job.path)
    if old is None:
        image_id = db["images"].insert(fields).last_pk
    else:
        image_id = old["id"]
        same = old["sha256"] is not None and old["sha256"] == fields["sha256"]
        _archive(db, old, "reprocessed" if same else "content changed")
        heir = None
        if old["status"] == "done" and not (same and fields["status"] == "done"):
            heir = _hand_over(db, old)
        else:
            sample_stats.drop_image(db, image_id)
            db.execute("DELETE FROM particles WHERE image_id = ?", [image_id])
        db["images"].update(image_id, fields)
        if heir:
            db["images"].update(*heir)
    if particles:
        db["particles"].insert_all(
            ({**{name: p.get(name) for name in PARTICLE_COLUMNS if name not in ("id", "image_id", "number")},
              "number": p.get("id"), "image_id": image_id} for p in particles))
    if fields["status"] == "done":
        sample_stats.add_image(db, image_id, job.sample, fields["nm_per_px"], list(particles))
    return Finished(image_id, fields["status"])


def finish_done(db: Database, job: Job, sha256: str, record: dict,
                seconds: float | None = None) -> Finished:
    """Store one processed image: its row with provenance, all its particles and
    the end of its queue entry, in one transaction. `record` is
    pipeline.analyse.analysis_record(). Ends as 'duplicate' instead if the same
    content was finished in this sample meanwhile."""
    if seconds is None:
        seconds = sum(record.get("timings_s", {}).values()) or None
    particles = record.get("particles") or []
    fields = {
        "status": "done", "sha256": sha256, "nm_per_px": record.get("nm_per_px"),
        "scale_source": record.get("scale_source"), "scale_text": record.get("scale_text"),
        "model": record.get("model"), "model_sha256": record.get("model_sha256"),
        "engine": record.get("engine"), "software_version": SOFTWARE_VERSION,
        "seconds": seconds, "n_particles": len(particles),
        "flags": json.dumps(record.get("flags") or []), "psd": json.dumps(record.get("psd")),
        "scale_details": json.dumps(record.get("scale") or {}),
    }
    with write_transaction(db):
        finished = _put_image(db, job, fields, particles)
        _close_job(db, job)
    return finished


def finish_quarantined(db: Database, job: Job, reason: str, sha256: str | None = None,
                       seconds: float | None = None) -> Finished:
    """A file that will not be processed, with the one-line reason a person reads."""
    with write_transaction(db):
        finished = _put_image(db, job, {"status": "quarantined", "reason": reason,
                                        "sha256": sha256 or job.sha256, "seconds": seconds,
                                        "software_version": SOFTWARE_VERSION})
        _close_job(db, job)
    return finished


def finish_skipped(db: Database, job: Job, sha256: str, reason: str, record: dict,
                   seconds: float | None = None) -> Finished:
    """A readable image that psdwatch does not measure (a bright-field frame): a row
    with the reason and the flags that decided it, no particles."""
    with write_transaction(db):
        finished = _put_image(db, job, {
            "status": "skipped", "reason": reason, "sha256": sha256, "seconds": seconds,
            "nm_per_px": record.get("nm_per_px"), "scale_source": record.get("scale_source"),
            "scale_text": record.get("scale_text"), "n_particles": 0,
            "flags": json.dumps(record.get("flags") or []), "software_version": SOFTWARE_VERSION})
        _close_job(db, job)
    return finished


def finish_duplicate(db: Database, job: Job, sha256: str, of_image_id: int) -> Finished | None:
    """A file whose content is already 'done' in its sample: a row, no particles.

    of_image_id is what the worker saw; the row points at whichever image holds
    the content when the transaction runs. If none does any more (replaced
    meanwhile), the job goes back to the queue and None is returned: this
    content now needs processing."""
    with write_transaction(db):
        target = is_duplicate(db, job.sample, sha256, exclude_path=job.path)
        if target is None:
            db.execute("UPDATE queue SET state = 'queued', claimed_at = NULL WHERE id = ?", [job.id])
            return None
        finished = _put_image(db, job, _as_duplicate({"sha256": sha256}, target))
        _close_job(db, job)
    return finished


def finish_unchanged(db: Database, job: Job) -> None:
    """The file was touched but its content (sha256) is what its row already
    holds: record the new size/mtime so it is not hashed again, change nothing else."""
    with write_transaction(db):
        db.execute("UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?",
                   [job.size, job.mtime_ns, job.path])
        _close_job(db, job)


def image_of_path(db: Database, relpath: str) -> dict | None:
    rows = list(db.query("SELECT * FROM images WHERE path = ?", [relpath]))
    return rows[0] if rows else None


# --------------------------------------------------------------------------- reading

def counts(db: Database, live_model: str | None = None) -> dict:
    """The numbers of `psdwatch status --json`. `model` is the live model passed
    in by the caller (the store does not know the models dir); without it, the
    model of the most recent 'done' image, or "classical". From the kept
    per-sample counts (sample_stats): the cost of the number of samples, not of
    images; a store made before them (read-only, not yet upgraded) is counted
    the old way."""
    by_state = dict(db.execute("SELECT state, COUNT(*) FROM queue GROUP BY state").fetchall())
    last = None
    if live_model is None:
        last = db.execute("SELECT model FROM images WHERE status = 'done' "
                          "ORDER BY processed_at DESC LIMIT 1").fetchone()
    if sample_stats.has_stats(db):
        kept = sample_stats.totals(db)
        by_status = {status: kept[status] for status in STATUSES}
        samples, unsure = kept["samples"], kept["unsure"]
    else:
        by_status = dict(db.execute("SELECT status, COUNT(*) FROM images GROUP BY status").fetchall())
        samples = db.execute("SELECT COUNT(DISTINCT sample) FROM images").fetchone()[0]
        unsure = db.execute("SELECT COUNT(*) FROM images WHERE status = 'done' "
                            "AND flags LIKE '%\"segmentation_unsure\"%'").fetchone()[0]
    return {
        "queued": by_state.get("queued", 0), "processing": by_state.get("processing", 0),
        **{status: by_status.get(status, 0) for status in STATUSES},
        "samples": samples, "model": live_model or (last[0] if last else "classical"),
        "unsure": unsure, **_mixed_models(db),
    }


def models_by_sample(db: Database, samples: list[str] | None = None) -> dict[str, dict[str, int]]:
    """{sample: {model: number of 'done' images}} of the samples whose done images
    come from more than one model (all samples, or those given)."""
    if sample_stats.has_stats(db):
        return sample_stats.mixed_models(db, samples)
    where = f"AND sample IN ({', '.join('?' for _ in samples)})" if samples else ""
    rows = db.execute(
        "SELECT sample, COALESCE(model, '?'), COUNT(*) FROM images WHERE status = 'done' "
        f"AND sample IN (SELECT sample FROM images WHERE status = 'done' {where} GROUP BY sample "
        "HAVING COUNT(DISTINCT COALESCE(model, '')) > 1) GROUP BY 1, 2 ORDER BY 1, 2", samples or []).fetchall()
    out: dict[str, dict[str, int]] = {}
    for sample, model, n in rows:
        out.setdefault(sample, {})[model] = n
    return out


def _mixed_models(db: Database) -> dict:
    """status --json: how many samples mix models, and which models with how many images each."""
    mixed = models_by_sample(db)
    return {"mixed_model_samples": len(mixed), "mixed_models": mixed}


def sample_images(db: Database, sample: str) -> list[dict]:
    """Every image row of one sample (all statuses), oldest first: the report's table."""
    return list(db.query("SELECT * FROM images WHERE sample = ? ORDER BY id", [sample]))


def sample_particles(db: Database, sample: str) -> list[dict]:
    """All particles of one sample's 'done' images, with the image path; uses
    the (sample, status) and image_id indexes, so it costs the same at 10 or
    1000 samples."""
    return list(db.query(
        "SELECT p.*, i.path AS image_path FROM images i JOIN particles p ON p.image_id = i.id "
        "WHERE i.sample = ? AND i.status = 'done' ORDER BY i.id, p.number", [sample]))


def problems(db: Database) -> list[str]:
    """Violations of DESIGN's store rules (empty when all is well): for tests
    and for a future `psdwatch check`."""
    checks = {
        "particles of an image that is not 'done'":
            "SELECT COUNT(*) FROM particles p JOIN images i ON i.id = p.image_id WHERE i.status != 'done'",
        "particles of a missing image":
            "SELECT COUNT(*) FROM particles WHERE image_id NOT IN (SELECT id FROM images)",
        f"status outside {'/'.join(STATUSES)}":
            f"SELECT COUNT(*) FROM images WHERE status NOT IN ({', '.join(repr(s) for s in STATUSES)})",
        "'skipped' or 'quarantined' image without its reason":
            "SELECT COUNT(*) FROM images WHERE status IN ('skipped', 'quarantined') AND IFNULL(reason, '') = ''",
        "duplicate not pointing at a 'done' image of the same content and sample":
            "SELECT COUNT(*) FROM images d LEFT JOIN images o ON o.id = d.duplicate_of "
            "WHERE d.status = 'duplicate' AND (o.id IS NULL OR o.status != 'done' "
            "OR o.sample != d.sample OR o.sha256 IS NOT d.sha256)",
        "'done' image without a sha256": "SELECT COUNT(*) FROM images WHERE status = 'done' AND sha256 IS NULL",
        "'done' image whose particle count is not its n_particles":
            "SELECT COUNT(*) FROM images i WHERE status = 'done' AND n_particles != "
            "(SELECT COUNT(*) FROM particles p WHERE p.image_id = i.id)",
    }
    found = []
    for what, sql in checks.items():
        n = db.execute(sql).fetchone()[0]
        if n:
            found.append(f"{n} x {what}")
    return found
