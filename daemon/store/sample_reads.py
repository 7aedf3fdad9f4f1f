"""One sample's reads for its page and its CSV, each at the cost of what is shown.

Every read goes through an index: the sample's latest (or one archive block's)
image rows by (sample, id), the particles by image_id, the kept per-image n and
d50 (`image_summaries`). A page never reads a whole sample, so it costs the same
at 10 images or 10^5. Columns an older store lacks read as NULL.
"""

from __future__ import annotations

import numpy as np
from sqlite_utils import Database

from .queries import IMAGE_FIELDS, PARTICLE_FIELDS, select_list
from .schema import columns

CHUNK = 500  # ids per IN (...): well under SQLite's limit on parameters


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[start:start + CHUNK] for start in range(0, len(ids), CHUNK)]


def _marks(ids: list) -> str:
    return ", ".join("?" for _ in ids)


def exact_sizes(db: Database, sample: str, unit: str) -> np.ndarray:
    """The equivalent diameters (nm, or px for the unscaled images) of the sample's
    'done' particles, in image and particle order; NaN where none was measured."""
    scaled = "!=" if unit == "nm" else "="
    rows = db.execute(f"SELECT p.ecd_{unit} FROM images i JOIN particles p ON p.image_id = i.id "
                      f"WHERE i.sample = ? AND i.status = 'done' AND IFNULL(i.nm_per_px, 0) {scaled} 0 "
                      "ORDER BY i.id, p.number", [sample]).fetchall()
    return np.array([np.nan if v is None else v for (v,) in rows], float)


def _image_rows(db: Database, sample: str, order: str, params: list) -> list[dict]:
    fields = select_list(IMAGE_FIELDS, columns(db, "images"), "i")
    cur = db.execute(f"SELECT {fields} FROM images i WHERE i.sample = ? {order}", [sample, *params])
    return [dict(zip(IMAGE_FIELDS, row)) for row in cur.fetchall()]


def latest_images(db: Database, sample: str, limit: int) -> list[dict]:
    """The sample's `limit` newest image rows (IMAGE_FIELDS), newest first: its page's table."""
    return _image_rows(db, sample, "ORDER BY i.id DESC LIMIT ?", [limit])


def image_block(db: Database, sample: str, limit: int, offset: int) -> list[dict]:
    """`limit` of the sample's image rows from the `offset`-th oldest: one archive page's table."""
    return _image_rows(db, sample, "ORDER BY i.id LIMIT ? OFFSET ?", [limit, offset])


def image_paths(db: Database, ids: list[int]) -> dict[int, str]:
    """{image id: path} of these images (what duplicates point at)."""
    out: dict[int, str] = {}
    for part in _chunks(ids):
        out.update(db.execute(f"SELECT id, path FROM images WHERE id IN ({_marks(part)})", part).fetchall())
    return out


def image_summaries(db: Database, ids: list[int]) -> dict[int, tuple]:
    """{image id: (n, d50)} kept for these images (sample_stats)."""
    out: dict[int, tuple] = {}
    for part in _chunks(ids):
        for image_id, n, d50 in db.execute("SELECT image_id, n, d50 FROM image_summaries WHERE image_id IN "
                                           f"({_marks(part)})", part):
            out[image_id] = (n, d50)
    return out


def edge_counts(db: Database, ids: list[int]) -> dict[str, int]:
    """How many particles of these images were measured at each edge ([measure] edge)."""
    out = {"profile": 0, "mask": 0}
    for part in _chunks(ids):
        for edge, n in db.execute(f"SELECT edge, COUNT(*) FROM particles WHERE image_id IN "
                                  f"({_marks(part)}) GROUP BY edge", part):
            if edge in out:
                out[edge] += n
    return out


def image_rank(db: Database, sample: str, image_id: int) -> int:
    """How many of the sample's images are older than this one (its place in the archive)."""
    return db.execute("SELECT COUNT(*) FROM images WHERE sample = ? AND id < ?", [sample, image_id]).fetchone()[0]


# --------------------------------------------------------------------------- CSV

def done_images_after(db: Database, sample: str, after_id: int, limit: int) -> list[int]:
    """Ids of the sample's next `limit` 'done' images after `after_id`, in id order."""
    return [r[0] for r in db.execute("SELECT id FROM images WHERE sample = ? AND status = 'done' AND id > ? "
                                     "ORDER BY id LIMIT ?", [sample, after_id, limit])]


def particle_rows(db: Database, ids: list[int]) -> np.ndarray:
    """The particles of these images (PARTICLE_FIELDS, text columns as numbers),
    in image and particle order, as one float array."""
    fields = select_list(PARTICLE_FIELDS, columns(db, "particles"), "p")
    rows = db.execute(f"SELECT {fields} FROM particles p WHERE p.image_id IN ({_marks(ids)}) "
                      "ORDER BY p.image_id, p.number", ids).fetchall()
    return np.array(rows, dtype=float).reshape(-1, len(PARTICLE_FIELDS))


def scale_of_images(db: Database, ids: list[int]) -> dict[int, dict]:
    """{image id: {path, nm_per_px, scale_source}}: what each CSV row says of its image."""
    return {r[0]: {"path": r[1], "nm_per_px": r[2], "scale_source": r[3]}
            for r in db.execute(f"SELECT id, path, nm_per_px, scale_source FROM images WHERE id IN ({_marks(ids)})",
                                ids)}
