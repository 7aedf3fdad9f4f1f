"""The report thread's bookkeeping: which pages are due, which pictures wait, whether reports keep up.

Triggers on `images` (sample_stats) mark a sample's pages due (`report_dirty`)
and an image already listed in an archive page changed (`report_dirty_images`);
the report thread clears the marks once the pages are drawn, notes the archive
blocks it wrote (`archive_pages`) and how far each sample's CSV goes
(`csv_state`). Pictures that could not be written wait in `pending_files`.
`report_health` is what `psdwatch status` says of the reports. Each write is
one short transaction of its own, so the report thread never holds the write
lock while it draws. This module imports nothing heavy, so that `psdwatch
status` answers at once.
"""

from __future__ import annotations

from sqlite_utils import Database

from .schema import has_table, now, write_transaction

CSV_STATE_DDL = ("CREATE TABLE IF NOT EXISTS csv_state (sample TEXT PRIMARY KEY, last_image_id INTEGER NOT NULL, "
                 "rows INTEGER NOT NULL, bytes INTEGER NOT NULL)")


def _write(db: Database, sql: str, params: list = ()) -> None:
    """One small bookkeeping write of the report thread, in its own transaction."""
    with write_transaction(db):
        db.execute(sql, params)


# --------------------------------------------------------------------------- pictures

def keep_picture(db: Database, name: str, data: bytes) -> None:
    """A thumbnail or view that could not be written now: kept in the store until it can."""
    _write(db, "INSERT OR REPLACE INTO pending_files (name, data, queued_at) VALUES (?, ?, ?)", [name, data, now()])


def waiting_pictures(db: Database, limit: int = 50) -> list[tuple[str, bytes]]:
    """The oldest pictures still to write, `limit` at a time (an outage may have kept thousands)."""
    return db.execute("SELECT name, data FROM pending_files ORDER BY queued_at LIMIT ?", [limit]).fetchall()


def picture_written(db: Database, name: str) -> None:
    """The picture is on disk now: the store lets go of its copy."""
    _write(db, "DELETE FROM pending_files WHERE name = ?", [name])


# --------------------------------------------------------------------------- due pages

def mark_due(db: Database, samples: list[str]) -> None:
    """Mark these samples' pages due (at start: pages missing or behind the store)."""
    with write_transaction(db):
        db.conn.executemany("INSERT INTO report_dirty (sample, marks) VALUES (?, 1) ON CONFLICT(sample) "
                            "DO UPDATE SET marks = marks + 1", [(s,) for s in samples])


def due_samples(db: Database, samples: list[str] | None = None,
                everything: bool = False) -> list[tuple[str, int | None, int]]:
    """(sample, marks, rewrite_csv) of the pages to draw: the marked samples, or
    those given, or (everything) every sample with images; marks is None for a
    sample chosen that carries no mark."""
    if samples is not None and not samples and not everything:
        return []
    if everything or samples is not None:
        chosen = "" if everything else f"AND c.sample IN ({', '.join('?' * len(samples))})"
        return db.execute("SELECT c.sample, d.marks, IFNULL(d.rewrite_csv, 0) FROM sample_counts c LEFT JOIN "
                          f"report_dirty d ON d.sample = c.sample WHERE c.images > 0 {chosen} ORDER BY c.sample",
                          [] if everything else list(samples)).fetchall()
    return db.execute("SELECT sample, marks, rewrite_csv FROM report_dirty ORDER BY sample").fetchall()


def clear_due(db: Database, sample: str, marks: int) -> None:
    """The sample's pages are drawn: clear its mark, unless an image came in meanwhile (more marks)."""
    _write(db, "DELETE FROM report_dirty WHERE sample = ? AND marks = ?", [sample, marks])


# --------------------------------------------------------------------------- archive pages

def archive_blocks(db: Database, sample: str) -> set[int]:
    """The sample's archive blocks written so far."""
    return {b for (b,) in db.execute("SELECT block FROM archive_pages WHERE sample = ?", [sample])}


def archive_block_written(db: Database, sample: str, block: int) -> None:
    """The block's archive page is drawn: written again only when one of its images changes."""
    _write(db, "INSERT OR IGNORE INTO archive_pages (sample, block) VALUES (?, ?)", [sample, block])


def changed_images(db: Database, sample: str) -> list[int]:
    """Images of the sample that changed since their archive page was drawn."""
    return [i for (i,) in db.execute("SELECT image_id FROM report_dirty_images WHERE sample = ?", [sample])]


def changes_drawn(db: Database, image_ids: list[int]) -> None:
    """Clear the change marks of these images (their archive pages are drawn again)."""
    for start in range(0, len(image_ids), 500):
        part = image_ids[start:start + 500]
        _write(db, f"DELETE FROM report_dirty_images WHERE image_id IN ({', '.join('?' * len(part))})", part)


# --------------------------------------------------------------------------- CSV

def csv_state(db: Database, sample: str) -> tuple[int, int, int] | None:
    """(last image id, rows, bytes) of the sample's CSV as last written, or None."""
    if not has_table(db, "csv_state"):
        return None
    return db.execute("SELECT last_image_id, rows, bytes FROM csv_state WHERE sample = ?", [sample]).fetchone()


def save_csv_state(db: Database, sample: str, last_image_id: int, rows: int, size: int) -> None:
    """How far the sample's CSV now goes, so the next append starts there."""
    with write_transaction(db):
        db.execute(CSV_STATE_DDL)
        db.execute("INSERT OR REPLACE INTO csv_state (sample, last_image_id, rows, bytes) VALUES (?, ?, ?, ?)",
                   [sample, last_image_id, rows, size])


# --------------------------------------------------------------------------- health

def note_failure(db: Database, what: str, error: BaseException) -> None:
    """Keep the failure where `psdwatch status` reads it (since when, and why)."""
    _write(db, "INSERT INTO report_health (id, failing_since, error) VALUES (1, ?, ?) ON CONFLICT(id) "
               "DO UPDATE SET failing_since = IFNULL(failing_since, excluded.failing_since), "
               "error = excluded.error", [now(), f"{what}: {error}"])


def note_ok(db: Database) -> None:
    """A round of the reports went through: the failure `psdwatch status` showed is over."""
    _write(db, "INSERT INTO report_health (id, last_ok) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET "
               "failing_since = NULL, error = NULL, last_ok = excluded.last_ok", [now()])


def failing_since(db: Database) -> str | None:
    """When the reports started failing (None while they are written)."""
    row = db.execute("SELECT failing_since FROM report_health WHERE id = 1").fetchone()
    return row[0] if row else None


def health(db: Database | None) -> dict:
    """For `psdwatch status`: samples whose pages are due, pictures waiting to be
    written, and the reports' failure (since when, why), if any."""
    if db is None or not has_table(db, "report_health"):
        return {"reports_due": None, "pictures_waiting": 0, "reports_failing_since": None, "reports_error": None}
    row = db.execute("SELECT failing_since, error FROM report_health WHERE id = 1").fetchone() or (None, None)
    return {"reports_due": db.execute("SELECT COUNT(*) FROM report_dirty").fetchone()[0],
            "pictures_waiting": db.execute("SELECT COUNT(*) FROM pending_files").fetchone()[0],
            "reports_failing_since": row[0], "reports_error": row[1]}
