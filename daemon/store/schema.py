"""The store's tables and how a connection to it is opened; the one way to write.

One file in WAL mode, so that people can open it with sqlite-utils or Datasette
while the service writes: readers see a consistent snapshot and never block the
writer. Every write here is one short `BEGIN IMMEDIATE` transaction; IMMEDIATE
takes the write lock up front, so two writers (the watcher enqueuing, the worker
finishing) wait for each other through busy_timeout instead of failing with
SQLITE_BUSY half-way through a read-then-write.

Forward upgrades only add columns, so an older store opens in a newer psdwatch.
The tables people rely on (DESIGN): `images` and `particles`; `queue` and
`images_history` are psdwatch's own; the numbers kept per sample live in
sample_stats.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, NamedTuple

from sqlite_utils import Database

from . import sample_stats
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


def abandon(db: Database) -> None:
    """Roll back a transaction an error left open on this connection, so that the
    next write starts clean (a bug mid-write must not hold the write lock)."""
    if db.conn.in_transaction:
        db.conn.execute("ROLLBACK")


def has_table(db: Database, name: str) -> bool:
    """Whether the store has this table: a store made by an older psdwatch (or one
    opened read-only, never upgraded) may lack the bookkeeping tables."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() is not None


def columns(db: Database, table: str) -> set[str]:
    """The columns a table has in this store (an older store may lack newer ones)."""
    return {row[1] for row in db.execute(f"PRAGMA table_info([{table}])").fetchall()}


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
