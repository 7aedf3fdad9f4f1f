"""One row per image file, its particles, and the history of what a row held.

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
  transaction: after a crash there is either all of it or none of it (outcomes.py).
"""

from __future__ import annotations

from sqlite_utils import Database

from . import sample_stats
from .schema import (HISTORY_COLUMNS, IMAGE_COLUMNS, PARTICLE_COLUMNS, RESULT_COLUMNS, STATUSES, Finished, Job,
                     now, write_transaction)
from ...pipeline import __version__ as SOFTWARE_VERSION


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
        _drop_particles(db, old["id"])
        return None
    heir = dups[0]
    sample_stats.move_image(db, old["id"], heir)
    db.execute("UPDATE particles SET image_id = ? WHERE image_id = ?", [heir, old["id"]])
    db.execute("UPDATE images SET duplicate_of = ? WHERE duplicate_of = ? AND id != ?",
               [heir, old["id"], heir])
    return heir, {**{k: old[k] for k in RESULT_COLUMNS}, "status": "done", "duplicate_of": None,
                  "reason": f"promoted: same content as {old['path']}, which was replaced"}


def as_duplicate(fields: dict, of_image_id: int) -> dict:
    """A row that records the file and points at the content's 'done' row; no result."""
    cleared = {k: None for k in RESULT_COLUMNS if k not in ("processed_at", "seconds")}
    return {**fields, **cleared, "status": "duplicate", "duplicate_of": of_image_id,
            "reason": f"same content as image {of_image_id}", "software_version": SOFTWARE_VERSION}


def put_image(db: Database, job: Job, fields: dict, particles: list[dict] = ()) -> Finished:
    """Write the row of job.path (insert, or rewrite in place) and its particles.
    Runs inside the caller's write_transaction."""
    fields = {**{k: None for k in IMAGE_COLUMNS if k != "id"},
              "path": job.path, "sample": job.sample, "size": job.size, "mtime_ns": job.mtime_ns,
              "attempts": job.attempts, "processed_at": now(), **fields}
    if fields["status"] == "done":
        first = is_duplicate(db, job.sample, fields["sha256"], exclude_path=job.path)
        if first is not None:  # the same content was finished meanwhile under another name
            fields, particles = as_duplicate(fields, first), ()
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
            _drop_particles(db, image_id)
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


def _drop_particles(db: Database, image_id: int) -> None:
    sample_stats.drop_image(db, image_id)
    db.execute("DELETE FROM particles WHERE image_id = ?", [image_id])


def note_unchanged(db: Database, job: Job) -> None:
    """The file's new size/mtime, its content unchanged; inside the caller's write_transaction."""
    db.execute("UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?", [job.size, job.mtime_ns, job.path])


def image_of_path(db: Database, relpath: str) -> dict | None:
    rows = list(db.query("SELECT * FROM images WHERE path = ?", [relpath]))
    return rows[0] if rows else None


def paths_after(db: Database, after: str, limit: int) -> list[tuple[int, str, str, str | None]]:
    """(id, path, sample, missing_since) of the next `limit` images in path order
    after `after`: the missing-file scan walks the store a slice at a time."""
    return db.execute("SELECT id, path, sample, missing_since FROM images WHERE path > ? ORDER BY path LIMIT ?",
                      [after, limit]).fetchall()


def mark_missing(db: Database, gone: list[int], back: list[int]) -> None:
    """Mark the images whose files left the share (now), unmark those that came back;
    their results stay either way."""
    with write_transaction(db):
        stamp = now()
        db.conn.executemany("UPDATE images SET missing_since = ? WHERE id = ?", [(stamp, i) for i in gone])
        db.conn.executemany("UPDATE images SET missing_since = NULL WHERE id = ?", [(i,) for i in back])


def finished_count(db: Database, paths: list[str]) -> int:
    """How many of these files have their final outcome (a row in any status)."""
    marks = ", ".join("?" for _ in paths)
    return db.execute(f"SELECT COUNT(*) FROM images WHERE path IN ({marks}) AND status IN "
                      f"({', '.join('?' for _ in STATUSES)})", [*paths, *STATUSES]).fetchone()[0]


REMEASURE_WHY = ("model", "changed-config", "force")


def _stale_where(why: str, model_sha256: str | None, fallback_nm_per_px: float | None) -> tuple[str, list]:
    """The SQL condition (and its parameters) of a stored image that `why` re-measures.

    "model": measured with other weights than the model's (`model_sha256`; None,
    the classical engine: with a network). "changed-config": that, or a scale the
    current [scale] would now give differently: no scale while a fallback
    nm_per_px is set, or a fallback scale that is no longer the configured one.
    Only what the store records can be compared; settings it does not keep per
    image ([measure], thresholds) need "force": every image."""
    if why == "force":
        return "1", []
    if model_sha256 is not None:
        stale, params = ["(model_sha256 IS NULL OR model_sha256 != ?)"], [model_sha256]
    else:
        stale, params = ["IFNULL(engine, '') != 'classical'"], []
    if why == "changed-config":
        if fallback_nm_per_px is not None:
            stale += ["(status = 'done' AND nm_per_px IS NULL)",
                      "(scale_source = 'config' AND ABS(nm_per_px - ?) > 1e-9 * ?)"]
            params += [fallback_nm_per_px, fallback_nm_per_px]
        else:
            stale.append("scale_source = 'config'")
    return f"({' OR '.join(stale)})", params


def images_to_remeasure(db: Database, samples: list[str] | None, why: str, model_sha256: str | None,
                        fallback_nm_per_px: float | None = None) -> list[tuple[int, str, str]]:
    """(id, path, sample) of the 'done' and 'skipped' images of the samples (all
    when None) that `why` says to measure again (_stale_where), by sample and path."""
    if why not in REMEASURE_WHY:
        raise ValueError(f"unknown reason to re-measure: {why!r} (one of {', '.join(REMEASURE_WHY)})")
    where, params = ["status IN ('done', 'skipped')"], []
    if samples:
        where.append(f"sample IN ({', '.join('?' for _ in samples)})")
        params += samples
    stale, more = _stale_where(why, model_sha256, fallback_nm_per_px)
    where.append(stale)
    params += more
    return db.execute(f"SELECT id, path, sample FROM images WHERE {' AND '.join(where)} ORDER BY sample, path",
                      params).fetchall()
