"""The reports' reads of the store, and their cache of per-sample numbers.

Every read of one page runs in one consistent snapshot (WAL). A sample page
reads its kept numbers and its latest rows through indexes (sample_reads.py),
so it costs the same at 10 samples or 1000 and at 10 images or 10^5; the index
page reads the kept per-sample counts joined to `sample_summaries`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from .schema import columns, write_transaction
from ...pipeline.measure.schema import PARTICLE_SCHEMA

log = logging.getLogger("psdwatch.report")

SUMMARY_TABLE = "sample_summaries"
SUMMARY_COLUMNS = ("sample", "page", "unit", "n", "d10", "d50", "d90", "d50_lo", "d50_hi",
                   "mean", "std", "lognormal_median", "lognormal_sigma_g", "n_px",
                   "images_done", "as_of", "generated_at", "quantiles")


@contextmanager
def snapshot(db) -> Iterator[None]:
    """All reads of one page from one consistent snapshot (WAL): the worker may
    commit the next image between two of our queries."""
    conn = db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


IMAGE_FIELDS = ("id", "path", "status", "reason", "duplicate_of", "nm_per_px", "scale_source",
                "scale_text", "model", "engine", "n_particles", "flags", "scale_details",
                "processed_at", "sha256", "missing_since")
PARTICLE_FIELDS = ("image_id", "number", *(c.name for c in PARTICLE_SCHEMA if c.name != "id"))


# Text columns read into the float array as numbers: a particle's edge 1 = "profile",
# 0 = "mask" (NULL: stored before psdwatch said which).
EDGE_CODES = {"profile": 1.0, "mask": 0.0}
_AS_NUMBER = {"edge": "CASE {col} " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in EDGE_CODES.items()) + " END"}


def select_list(fields: tuple[str, ...], have: set[str], prefix: str) -> str:
    """Missing columns (an older store) read as NULL instead of failing."""
    def one(c: str) -> str:
        if c not in have:
            return f"NULL AS [{c}]"
        col = f"{prefix}.[{c}]"
        return f"{_AS_NUMBER[c].format(col=col)} AS [{c}]" if c in _AS_NUMBER else col
    return ", ".join(one(c) for c in fields)


INDEX_SQL = f"""
SELECT a.*, s.page, s.n, s.d50, s.d50_lo, s.d50_hi, s.n_px, s.images_done AS summary_done,
       s.as_of, s.quantiles
FROM (SELECT sample, COUNT(*) AS images,
             SUM(status = 'done') AS done, SUM(status = 'quarantined') AS quarantined,
             SUM(status = 'duplicate') AS duplicate, SUM(status = 'skipped') AS skipped,
             SUM(status = 'done' AND nm_per_px IS NULL) AS unscaled,
             COUNT(DISTINCT CASE WHEN status = 'done' THEN IFNULL(model, '') END) AS models,
             MAX(processed_at) AS last_update
      FROM images GROUP BY sample) AS a
LEFT JOIN [{SUMMARY_TABLE}] AS s ON s.sample = a.sample
ORDER BY a.last_update DESC, a.sample
"""
NO_CACHE_JOIN = (
    "LEFT JOIN (SELECT NULL AS sample, NULL AS page, NULL AS n, NULL AS d50, NULL AS d50_lo, "
    "NULL AS d50_hi, NULL AS n_px, NULL AS images_done, NULL AS as_of, NULL AS quantiles) AS s ON 0")


# From the kept per-sample counts (sample_stats): the cost of the samples listed, not of the images.
KEPT_INDEX_SQL = f"""
SELECT a.sample, a.images, a.done, a.quarantined, a.duplicate, a.skipped, a.unscaled, a.last_update,
       (SELECT COUNT(*) FROM sample_models m WHERE m.sample = a.sample AND m.n > 0) AS models,
       s.page, s.n, s.d50, s.d50_lo, s.d50_hi, s.n_px, s.images_done AS summary_done, s.as_of, s.quantiles
FROM sample_counts AS a LEFT JOIN [{SUMMARY_TABLE}] AS s ON s.sample = a.sample
WHERE a.images > 0 ORDER BY a.last_update DESC, a.sample LIMIT ? OFFSET ?
"""


def index_rows(db, limit: int = -1, offset: int = 0) -> list[dict]:
    """One row per sample (most recently updated first; `limit` of them from
    `offset`): counts by status, the last update and the cached numbers."""
    with snapshot(db):
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        kept = "sample_counts" in tables
        sql = KEPT_INDEX_SQL if kept else INDEX_SQL
        if SUMMARY_TABLE not in tables:
            sql = sql.replace(f"LEFT JOIN [{SUMMARY_TABLE}] AS s ON s.sample = a.sample", NO_CACHE_JOIN)
        elif "quantiles" not in columns(db, SUMMARY_TABLE):  # a cache written before quantiles
            sql = sql.replace("s.quantiles", "NULL AS quantiles")
        cur = db.execute(sql, [limit, offset] if kept else [])
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, row)) for row in cur.fetchall()]
    return rows if kept else (rows[offset:] if limit < 0 else rows[offset:offset + limit])


def _ensure_summary_table(db) -> None:
    db.execute(f"""CREATE TABLE IF NOT EXISTS [{SUMMARY_TABLE}] (
        sample TEXT PRIMARY KEY, page TEXT, unit TEXT, n INTEGER, d10 REAL, d50 REAL, d90 REAL,
        d50_lo REAL, d50_hi REAL, mean REAL, std REAL, lognormal_median REAL,
        lognormal_sigma_g REAL, n_px INTEGER, images_done INTEGER, as_of TEXT, generated_at TEXT,
        quantiles TEXT)""")
    if "quantiles" not in columns(db, SUMMARY_TABLE):  # forward upgrade of an older cache
        db.execute(f"ALTER TABLE [{SUMMARY_TABLE}] ADD COLUMN quantiles TEXT")


def save_summary(db, sample: str, page: str, images_done: int, as_of: str, summary: dict, n_px: int,
                 quantiles: list[float] | None = None) -> None:
    """Cache the sample's numbers for the index page (quantiles: its cumulative
    PSD, for the index's overlay). A report built from an older snapshot (two
    writers racing) never overwrites a newer one."""
    ci = summary.get("d50_ci95") or [None, None]
    row = {"sample": sample, "page": page, "unit": "nm", "n": summary["n"],
           "d10": summary["d10"], "d50": summary["d50"], "d90": summary["d90"],
           "d50_lo": ci[0], "d50_hi": ci[1], "mean": summary["mean"], "std": summary["std"],
           "lognormal_median": summary["lognormal_median"],
           "lognormal_sigma_g": summary["lognormal_sigma_g"], "n_px": n_px,
           "images_done": images_done, "as_of": as_of,
           "generated_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
           "quantiles": json.dumps(quantiles) if quantiles else None}
    cols = ", ".join(SUMMARY_COLUMNS)
    marks = ", ".join("?" for _ in SUMMARY_COLUMNS)
    update = ", ".join(f"{c} = excluded.{c}" for c in SUMMARY_COLUMNS if c != "sample")
    sql = (f"INSERT INTO [{SUMMARY_TABLE}] ({cols}) VALUES ({marks}) ON CONFLICT(sample) DO UPDATE "
           f"SET {update} WHERE excluded.as_of >= IFNULL([{SUMMARY_TABLE}].as_of, '')")
    try:
        with write_transaction(db):
            _ensure_summary_table(db)
            db.execute(sql, [row[c] for c in SUMMARY_COLUMNS])
    except sqlite3.Error as error:
        # The page is written; only the index's cached numbers lag behind.
        log.warning("could not cache the summary of sample %r for the index: %s", sample, error)
