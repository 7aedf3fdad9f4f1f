"""Whether the reports keep up: what `psdwatch status` says of them.

Kept in the store (the report thread writes it, status reads it read-only), in
a module that imports nothing heavy, so that `psdwatch status` answers at once.
"""

from __future__ import annotations

from . import core as store


def write(db, sql: str, params: list = ()) -> None:
    """One small bookkeeping write of the report thread, in its own transaction."""
    with store.write_transaction(db):
        db.execute(sql, params)


def note_failure(db, what: str, error: BaseException) -> None:
    """Keep the failure where `psdwatch status` reads it (since when, and why)."""
    text = f"{what}: {error}"
    with store.write_transaction(db):
        db.execute("INSERT INTO report_health (id, failing_since, error) VALUES (1, ?, ?) ON CONFLICT(id) "
                   "DO UPDATE SET failing_since = IFNULL(failing_since, excluded.failing_since), "
                   "error = excluded.error", [store.now(), text])


def note_ok(db) -> None:
    with store.write_transaction(db):
        db.execute("INSERT INTO report_health (id, last_ok) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET "
                   "failing_since = NULL, error = NULL, last_ok = excluded.last_ok", [store.now()])


def health(db) -> dict:
    """For `psdwatch status`: samples whose pages are due, pictures waiting to be
    written, and the reports' failure (since when, why), if any."""
    tables = set() if db is None else {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "report_health" not in tables:
        return {"reports_due": None, "pictures_waiting": 0, "reports_failing_since": None, "reports_error": None}
    row = db.execute("SELECT failing_since, error FROM report_health WHERE id = 1").fetchone() or (None, None)
    return {"reports_due": db.execute("SELECT COUNT(*) FROM report_dirty").fetchone()[0],
            "pictures_waiting": db.execute("SELECT COUNT(*) FROM pending_files").fetchone()[0],
            "reports_failing_since": row[0], "reports_error": row[1]}


