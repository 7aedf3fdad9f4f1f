"""What the store holds, counted: `psdwatch status`, the samples' rows and particles,
and `problems`, the check of DESIGN's store rules that the tests run.
"""

from __future__ import annotations

from sqlite_utils import Database

from . import sample_stats
from .schema import STATUSES


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
