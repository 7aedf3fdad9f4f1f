"""Kept per-sample numbers: counts by status, models, the PSD histogram, what to redraw.

A facility keeps years of images, and a campaign can put 10^5 images in one
sample: nothing that runs once per image, nor `psdwatch status`, may read a
whole sample or the whole store. So the store keeps, beside its contract tables:

- `sample_counts`: per sample, images by status, unscaled, unsure, missing and
  questionable-scale images, the last update; kept by SQLite triggers on
  `images`, so every writer (the service, reprocess, a person with sqlite-utils)
  keeps them right, in the same transaction.
- `sample_models`: per sample and model, the number of 'done' images (triggers).
- `sample_psd`: per sample and unit (nm, px) the merged size histogram
  (pipeline.psd_histogram) of its 'done' images' particles, and
  `image_summaries`: per 'done' image its n and d50 and the mark that its
  particles are in that histogram. images.py adds an image when it stores its
  particles and subtracts it (from its own particles) before they are deleted.
- `report_dirty`: the samples whose pages must be redrawn (triggers), and
  whether their CSV must be rewritten rather than appended to; with
  `report_dirty_images`, `archive_pages`, `report_health` and `pending_files`,
  the report thread's bookkeeping (daemon/report/scheduler.py).

A store made before these tables gets them filled once when it is opened.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from ...pipeline.measure.psd_histogram import SizeHistogram

log = logging.getLogger("psdwatch")

# Flags that make an image's scale questionable (report.FLAG_TEXT's "warn" scale flags;
# a test keeps the two lists equal).
QUESTIONABLE_SCALE_FLAGS = ("scale_disputed", "scale_from_config", "calibration_from_tiff_resolution",
                            "titan_xml_unit_assumed", "non_square_pixels", "mixed_units")


def _flag(row: str, flag: str) -> str:
    return f"{row}.flags LIKE '%\"{flag}\"%'"


def _counters(r: str) -> dict[str, str]:
    """The kept counters as SQL over one `images` row `r` (NEW or OLD)."""
    done = f"{r}.status = 'done'"
    scaled = f"IFNULL({r}.nm_per_px, 0) != 0"
    questionable = f"{done} AND {scaled} AND ({' OR '.join(_flag(r, f) for f in QUESTIONABLE_SCALE_FLAGS)})"
    return {"images": "1", "done": done, "quarantined": f"{r}.status = 'quarantined'",
            "duplicate": f"{r}.status = 'duplicate'", "skipped": f"{r}.status = 'skipped'",
            "unscaled": f"{done} AND NOT ({scaled})", "unsure": f"{done} AND {_flag(r, 'segmentation_unsure')}",
            "missing": f"{r}.missing_since IS NOT NULL AND {r}.status IN ('done', 'duplicate')", "questionable": questionable,
            "questionable_n": f"CASE WHEN {questionable} THEN IFNULL({r}.n_particles, 0) ELSE 0 END"}


COUNTERS = tuple(_counters("NEW"))
STATS_VERSION = "1"  # the histogram's bins; a change refills sample_psd


def _count_upsert(r: str, sign: int) -> str:
    exprs = _counters(r)
    cols = ", ".join(COUNTERS)
    values = ", ".join(f"{sign} * IFNULL(({exprs[c]}), 0)" for c in COUNTERS)
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTERS)
    last = f"{r}.processed_at" if sign > 0 else "NULL"
    return (f"INSERT INTO sample_counts (sample, {cols}, last_update) VALUES ({r}.sample, {values}, {last}) "
            f"ON CONFLICT(sample) DO UPDATE SET {sets}, last_update = CASE WHEN excluded.last_update "
            "> IFNULL(last_update, '') THEN excluded.last_update ELSE last_update END;")


def _model_upsert(r: str, sign: int) -> str:
    return (f"INSERT INTO sample_models (sample, model, n) VALUES ({r}.sample, IFNULL({r}.model, ''), {sign}) "
            "ON CONFLICT(sample, model) DO UPDATE SET n = n + excluded.n;")


def _dirty(r: str, rewrite: str) -> str:
    return (f"INSERT INTO report_dirty (sample, marks, rewrite_csv) VALUES ({r}.sample, 1, {rewrite}) "
            "ON CONFLICT(sample) DO UPDATE SET marks = marks + 1, "
            "rewrite_csv = MAX(rewrite_csv, excluded.rewrite_csv);")


# An update that changes what the CSV says of an image already in it.
_CSV_CHANGED = ("(OLD.status = 'done' OR NEW.status = 'done') AND (OLD.status IS NOT NEW.status "
                "OR OLD.processed_at IS NOT NEW.processed_at OR OLD.nm_per_px IS NOT NEW.nm_per_px "
                "OR OLD.path IS NOT NEW.path OR OLD.sample IS NOT NEW.sample)")

TRIGGERS = {
    "stats_images_insert": ("AFTER INSERT ON images", _count_upsert("NEW", 1) + _dirty("NEW", "0")),
    "stats_images_delete": ("AFTER DELETE ON images",
                            _count_upsert("OLD", -1) + _dirty("OLD", "OLD.status = 'done'")),
    "stats_images_update": ("AFTER UPDATE ON images", _count_upsert("OLD", -1) + _count_upsert("NEW", 1)
                            + _dirty("OLD", f"IFNULL({_CSV_CHANGED}, 0)") + _dirty("NEW", f"IFNULL({_CSV_CHANGED}, 0)")),
    # rows shown on a page changed: the archive page that lists the image is redrawn
    "stats_images_rows": ("AFTER UPDATE ON images WHEN OLD.status IS NOT NEW.status OR OLD.reason IS NOT NEW.reason "
                          "OR OLD.processed_at IS NOT NEW.processed_at OR OLD.missing_since IS NOT NEW.missing_since "
                          "OR OLD.flags IS NOT NEW.flags OR OLD.nm_per_px IS NOT NEW.nm_per_px "
                          "OR OLD.path IS NOT NEW.path OR OLD.model IS NOT NEW.model",
                          "INSERT OR IGNORE INTO report_dirty_images (image_id, sample) VALUES (NEW.id, NEW.sample);"),
    "stats_models_insert": ("AFTER INSERT ON images WHEN NEW.status = 'done'", _model_upsert("NEW", 1)),
    "stats_models_delete": ("AFTER DELETE ON images WHEN OLD.status = 'done'", _model_upsert("OLD", -1)),
    "stats_models_update_old": ("AFTER UPDATE ON images WHEN OLD.status = 'done'", _model_upsert("OLD", -1)),
    "stats_models_update_new": ("AFTER UPDATE ON images WHEN NEW.status = 'done'", _model_upsert("NEW", 1)),
}

TABLES = f"""
CREATE TABLE IF NOT EXISTS sample_counts (sample TEXT PRIMARY KEY,
    {', '.join(f'{c} INTEGER NOT NULL DEFAULT 0' for c in COUNTERS)}, last_update TEXT);
CREATE TABLE IF NOT EXISTS sample_models (sample TEXT NOT NULL, model TEXT NOT NULL,
    n INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (sample, model));
CREATE TABLE IF NOT EXISTS sample_psd (sample TEXT NOT NULL, unit TEXT NOT NULL, hist BLOB,
    PRIMARY KEY (sample, unit));
CREATE TABLE IF NOT EXISTS image_summaries (image_id INTEGER PRIMARY KEY, sample TEXT NOT NULL,
    unit TEXT NOT NULL, n INTEGER NOT NULL, d50 REAL);
CREATE TABLE IF NOT EXISTS report_dirty (sample TEXT PRIMARY KEY, marks INTEGER NOT NULL DEFAULT 0,
    rewrite_csv INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS report_dirty_images (image_id INTEGER PRIMARY KEY, sample TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS report_dirty_images_sample ON report_dirty_images (sample);
CREATE TABLE IF NOT EXISTS archive_pages (sample TEXT NOT NULL, block INTEGER NOT NULL, PRIMARY KEY (sample, block));
CREATE TABLE IF NOT EXISTS report_health (id INTEGER PRIMARY KEY CHECK (id = 1), failing_since TEXT, error TEXT,
    last_ok TEXT);
CREATE TABLE IF NOT EXISTS pending_files (name TEXT PRIMARY KEY, data BLOB NOT NULL, queued_at TEXT);
CREATE TABLE IF NOT EXISTS psdwatch_meta (key TEXT PRIMARY KEY, value TEXT);
"""


def _signature() -> str:
    text = json.dumps([TABLES, sorted(TRIGGERS.items()), STATS_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure(db) -> None:
    """Create the tables and triggers; fill them once for a store made before them
    (or with other triggers). Runs inside open_store's write transaction."""
    conn = db.conn
    for statement in filter(str.strip, TABLES.split(";")):  # executescript would commit the caller's transaction
        conn.execute(statement)
    row = conn.execute("SELECT value FROM psdwatch_meta WHERE key = 'stats'").fetchone()
    if row is not None and row[0] == _signature():
        return
    for name, (when, body) in TRIGGERS.items():
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    _refill_counts(conn)
    _refill_psd(conn)
    conn.execute("INSERT OR REPLACE INTO psdwatch_meta (key, value) VALUES ('stats', ?)", [_signature()])


def _refill_counts(conn) -> None:
    exprs = _counters("images")
    conn.execute("DELETE FROM sample_counts")
    conn.execute(f"INSERT INTO sample_counts (sample, {', '.join(COUNTERS)}, last_update) SELECT sample, "
                 + ", ".join(f"SUM(IFNULL(({exprs[c]}), 0))" for c in COUNTERS)
                 + ", MAX(processed_at) FROM images GROUP BY sample")
    conn.execute("DELETE FROM sample_models")
    conn.execute("INSERT INTO sample_models (sample, model, n) SELECT sample, IFNULL(model, ''), COUNT(*) "
                 "FROM images WHERE status = 'done' GROUP BY 1, 2")


def _refill_psd(conn, chunk: int = 200_000) -> None:
    """Every 'done' image's particles into its sample's histogram: one pass over
    the particles, in image order, once per store."""
    conn.execute("DELETE FROM sample_psd")
    conn.execute("DELETE FROM image_summaries")
    cur = conn.execute("SELECT p.image_id, i.sample, IFNULL(i.nm_per_px, 0) != 0, "
                       "CASE WHEN IFNULL(i.nm_per_px, 0) != 0 THEN p.ecd_nm ELSE p.ecd_px END "
                       "FROM images i JOIN particles p ON p.image_id = i.id WHERE i.status = 'done' "
                       "ORDER BY p.image_id")
    hists: dict[tuple[str, str], SizeHistogram] = {}
    carry: list[tuple] = []
    while rows := cur.fetchmany(chunk):
        rows = carry + rows
        last = rows[-1][0]
        cut = next(i for i in range(len(rows) - 1, -1, -1) if rows[i][0] != last) + 1 if rows[0][0] != last else 0
        carry, rows = rows[cut:], rows[:cut]
        _refill_rows(conn, rows, hists)
    _refill_rows(conn, carry, hists)
    conn.executemany("INSERT INTO sample_psd (sample, unit, hist) VALUES (?, ?, ?)",
                     [(s, u, h.to_bytes()) for (s, u), h in hists.items()])
    conn.execute("INSERT INTO image_summaries (image_id, sample, unit, n, d50) SELECT id, sample, "
                 "CASE WHEN IFNULL(nm_per_px, 0) != 0 THEN 'nm' ELSE 'px' END, 0, NULL FROM images "
                 "WHERE status = 'done' AND id NOT IN (SELECT image_id FROM image_summaries)")


def _refill_rows(conn, rows: list[tuple], hists: dict) -> None:
    if not rows:
        return
    ids = np.array([r[0] for r in rows], np.int64)
    d = np.array([np.nan if r[3] is None else r[3] for r in rows], float)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], ids.size]
    summaries = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        sample, unit = rows[a][1], "nm" if rows[a][2] else "px"
        key = (sample, unit)
        hists[key] = hists.get(key, SizeHistogram()).combined(SizeHistogram.of(d[a:b]))
        summaries.append((int(ids[a]), sample, unit, b - a, _median(d[a:b])))
    conn.executemany("INSERT INTO image_summaries (image_id, sample, unit, n, d50) VALUES (?, ?, ?, ?, ?)",
                     summaries)


def _median(d: np.ndarray) -> float | None:
    d = d[np.isfinite(d)]
    return float(np.median(d)) if d.size else None


# --------------------------------------------------------------------------- images.py's hooks

def _change_psd(conn, sample: str, unit: str, h: SizeHistogram, sign: int) -> None:
    if h.n == 0:
        return
    row = conn.execute("SELECT hist FROM sample_psd WHERE sample = ? AND unit = ?", [sample, unit]).fetchone()
    merged = SizeHistogram.from_bytes(row[0] if row else None).combined(h, sign)
    conn.execute("INSERT INTO sample_psd (sample, unit, hist) VALUES (?, ?, ?) ON CONFLICT(sample, unit) "
                 "DO UPDATE SET hist = excluded.hist", [sample, unit, merged.to_bytes()])


def add_image(db, image_id: int, sample: str, nm_per_px: float | None, particles: list[dict]) -> None:
    """A 'done' image's particles were stored: add them to its sample's histogram
    and keep its n and d50 (the page's image row). Inside the caller's transaction."""
    unit = "nm" if nm_per_px else "px"
    key = "ecd_nm" if nm_per_px else "ecd_px"
    d = np.array([np.nan if p.get(key) is None else p[key] for p in particles], float)
    _change_psd(db.conn, sample, unit, SizeHistogram.of(d), 1)
    db.conn.execute("INSERT OR REPLACE INTO image_summaries (image_id, sample, unit, n, d50) VALUES (?, ?, ?, ?, ?)",
                    [image_id, sample, unit, len(particles), _median(d)])


def drop_image(db, image_id: int) -> None:
    """The image's particles are about to be deleted: take them out of its
    sample's histogram, read from the particles themselves (one image's worth)."""
    row = db.conn.execute("SELECT sample, unit FROM image_summaries WHERE image_id = ?", [image_id]).fetchone()
    if row is None:
        return
    sample, unit = row
    column = "ecd_nm" if unit == "nm" else "ecd_px"
    d = np.array([np.nan if v is None else v for (v,) in
                  db.conn.execute(f"SELECT {column} FROM particles WHERE image_id = ?", [image_id])], float)
    _change_psd(db.conn, sample, unit, SizeHistogram.of(d), -1)
    db.conn.execute("DELETE FROM image_summaries WHERE image_id = ?", [image_id])


def move_image(db, from_id: int, to_id: int) -> None:
    """The particles of one image pass to its duplicate (same sample, same content)."""
    db.conn.execute("DELETE FROM image_summaries WHERE image_id = ?", [to_id])
    db.conn.execute("UPDATE image_summaries SET image_id = ? WHERE image_id = ?", [to_id, from_id])


# --------------------------------------------------------------------------- reading

def has_stats(db) -> bool:
    """False for a store made before these tables, opened read-only."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sample_counts'").fetchone() is not None


def sample_counts(db, sample: str) -> dict:
    cur = db.execute("SELECT * FROM sample_counts WHERE sample = ?", [sample])
    row = cur.fetchone()
    names = [c[0] for c in cur.description]
    return dict(zip(names, row)) if row else {**{c: 0 for c in COUNTERS}, "sample": sample, "last_update": None}


def sample_models(db, sample: str) -> dict[str, int]:
    """{model ('?' when unknown): number of 'done' images} of one sample."""
    return {m or "?": n for m, n in db.execute(
        "SELECT model, n FROM sample_models WHERE sample = ? AND n > 0 ORDER BY model", [sample])}


def mixed_models(db, samples: list[str] | None = None) -> dict[str, dict[str, int]]:
    """{sample: {model: images}} of the samples whose 'done' images come from more than one model."""
    where = f"AND sample IN ({', '.join('?' for _ in samples)})" if samples else ""
    rows = db.execute(f"SELECT sample, model, n FROM sample_models WHERE n > 0 {where} AND sample IN "
                      "(SELECT sample FROM sample_models WHERE n > 0 GROUP BY sample HAVING COUNT(*) > 1) "
                      "ORDER BY sample, model", samples or []).fetchall()
    out: dict[str, dict[str, int]] = {}
    for sample, model, n in rows:
        out.setdefault(sample, {})[model or "?"] = n
    return out


def histogram(db, sample: str, unit: str) -> SizeHistogram:
    row = db.execute("SELECT hist FROM sample_psd WHERE sample = ? AND unit = ?", [sample, unit]).fetchone()
    return SizeHistogram.from_bytes(row[0] if row else None)


def totals(db) -> dict:
    """The store's images by status and its samples, from the kept counts."""
    row = db.execute(f"SELECT COUNT(*), {', '.join(f'IFNULL(SUM({c}), 0)' for c in COUNTERS)} "
                     "FROM sample_counts WHERE images > 0").fetchone()
    return {"samples": row[0], **dict(zip(COUNTERS, row[1:]))}
