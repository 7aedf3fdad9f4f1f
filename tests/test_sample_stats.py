"""Kept per-sample numbers (issue 26) on a real SQLite store: they equal a recount
after every kind of write, an older store gets them once, the figures drawn from
them are today's on the real particles of ../shared/data, a large sample is paged
and its CSV appended to, never lost or doubled."""

from __future__ import annotations

import csv
import hashlib
import math

import cv2
import numpy as np
import pytest
import tifffile

from psdwatch.daemon import report
from psdwatch.daemon import store
from psdwatch.daemon.store import sample_stats
from psdwatch.daemon.report.scheduler import rebuild_due
from psdwatch.daemon.report.sample_page import read_sample_data, write_sample_report
from psdwatch.pipeline.measure import psd
from psdwatch.pipeline.measure.particles import label_particles, measure_particles
from psdwatch.pipeline.measure.psd_histogram import SizeHistogram, summarise_histogram

from .test_report import add_done, add_quarantined, first_number, parse, particles


def _finish(db, path: str, sample: str, parts: list[dict], nm_per_px, sha: str, flags=()):
    """Store a new version of `path` (a file replaced on the share, or measured again)."""
    store.enqueue(db, path, sample, 7, hash(sha) & 0xFFFF, force=True)
    job = store.claim_next(db)
    return store.finish_done(db, job, sha, {"nm_per_px": nm_per_px, "particles": parts, "flags": list(flags),
                                            "model": "m"})


def recount(db) -> dict[str, dict]:
    """The counters from `images` itself, written independently of sample_stats."""
    out = {}
    for row in db.query("SELECT * FROM images"):
        c = out.setdefault(row["sample"], {k: 0 for k in sample_stats.COUNTERS})
        flags = row["flags"] or ""
        done, scaled = row["status"] == "done", bool(row["nm_per_px"])
        c["images"] += 1
        c[row["status"]] += 1
        c["unscaled"] += done and not scaled
        c["unsure"] += done and '"segmentation_unsure"' in flags
        c["missing"] += row["missing_since"] is not None and row["status"] in ("done", "duplicate")
        q = done and scaled and any(f'"{f}"' in flags for f in sample_stats.QUESTIONABLE_SCALE_FLAGS)
        c["questionable"] += q
        c["questionable_n"] += (row["n_particles"] or 0) if q else 0
    return out


def assert_kept_numbers_right(db) -> None:
    counts = recount(db)
    for sample, expected in counts.items():
        kept = sample_stats.sample_counts(db, sample)
        assert {k: kept[k] for k in sample_stats.COUNTERS} == expected, sample
        for unit, test in (("nm", "IFNULL(i.nm_per_px, 0) != 0"), ("px", "IFNULL(i.nm_per_px, 0) = 0")):
            d = [v for (v,) in db.execute(f"SELECT p.ecd_{unit} FROM particles p JOIN images i ON i.id = p.image_id "
                                          f"WHERE i.sample = ? AND i.status = 'done' AND {test}", [sample])]
            truth, kept_h = SizeHistogram.of(np.array(d, float)), sample_stats.histogram(db, sample, unit)
            assert kept_h.bins.tolist() == truth.bins.tolist() and kept_h.counts.tolist() == truth.counts.tolist()
            np.testing.assert_allclose(kept_h.totals, truth.totals, rtol=1e-9)
            np.testing.assert_allclose(kept_h.sums, truth.sums, rtol=1e-9, atol=1e-9)
    done = db.execute("SELECT COUNT(*) FROM images WHERE status = 'done'").fetchone()[0]
    assert db.execute("SELECT COUNT(*) FROM image_summaries").fetchone()[0] == done
    assert store.counts(db)["done"] == done


def test_kept_numbers_equal_a_recount_after_every_kind_of_write(store_db):
    db = store_db
    sha = {k: hashlib.sha256(k.encode()).hexdigest() for k in "abcdefgh"}
    add_done(db, "A/1.tif", "A", particles(40, 0.2, seed=1), 0.2, sha=sha["a"])
    add_done(db, "A/copy.tif", "A", particles(40, 0.2, seed=1), 0.2, sha=sha["a"])  # duplicate
    add_done(db, "A/2.tif", "A", particles(30, None, seed=2), None, sha=sha["b"])  # no scale
    add_done(db, "A/3.tif", "A", particles(25, 0.2, seed=3), 0.2, sha=sha["c"],
             flags=["segmentation_unsure", "scale_disputed"], model="other")
    add_done(db, "B/1.tif", "B", particles(10, 0.5, seed=4), 0.5, sha=sha["d"])
    add_quarantined(db, "B/bad.tif", "B", "unreadable")
    assert_kept_numbers_right(db)
    _finish(db, "A/1.tif", "A", particles(12, 0.2, seed=5), 0.2, sha["e"])  # replaced: the copy inherits
    assert_kept_numbers_right(db)
    _finish(db, "A/3.tif", "A", particles(27, 0.25, seed=6), 0.25, sha["c"])  # measured again, same content
    assert_kept_numbers_right(db)
    store.enqueue(db, "B/1.tif", "B", 9, 9)  # a file that now fails: done -> quarantined
    store.finish_quarantined(db, store.claim_next(db), "truncated")
    assert_kept_numbers_right(db)
    db.execute("UPDATE images SET missing_since = '2026-01-01' WHERE path = 'A/2.tif'")  # a person, by hand
    assert_kept_numbers_right(db)
    by_model: dict[str, dict[str, int]] = {}
    for sample, model, n in db.execute("SELECT sample, IFNULL(model, '?'), COUNT(*) FROM images "
                                       "WHERE status = 'done' GROUP BY 1, 2"):
        by_model.setdefault(sample, {})[model] = n
    assert store.counts(db)["mixed_models"] == {s: m for s, m in by_model.items() if len(m) > 1}
    assert store.counts(db)["mixed_model_samples"] == 1


def test_questionable_flags_are_the_reports(store_db):
    assert set(sample_stats.QUESTIONABLE_SCALE_FLAGS) == set(report.QUESTIONABLE_SCALE)


def test_a_store_made_before_the_kept_numbers_gets_them_once(tmp_path):
    path = tmp_path / "old.sqlite"
    db = store.open_store(path)
    for k in range(6):
        add_done(db, f"S{k % 2}/{k}.tif", f"S{k % 2}", particles(20 + k, 0.3 if k % 3 else None, seed=k),
                 0.3 if k % 3 else None)
    # what a store of the previous version lacks: the kept tables, their triggers, the mark
    for (name, kind) in db.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'trigger') "
                                   "AND (name LIKE 'stats_%' OR name IN ('sample_counts', 'sample_models', "
                                   "'sample_psd', 'image_summaries', 'report_dirty', 'report_dirty_images', "
                                   "'archive_pages', 'report_health', 'pending_files', 'psdwatch_meta'))").fetchall():
        db.execute(f"DROP {kind.upper()} {name}")
    db.conn.commit()
    db.close()
    db = store.open_store(path)
    assert_kept_numbers_right(db)
    db.execute("DELETE FROM sample_psd WHERE sample = 'S0'")  # a refill would bring it back
    db.conn.commit()
    db.close()
    db = store.open_store(path)
    assert sample_stats.histogram(db, "S0", "nm").n == 0  # filled once, not at every open
    db.close()


# --------------------------------------------------------------------------- real particles

@pytest.fixture(scope="module")
def real_diameters(data_dir) -> list[list[dict]]:
    """The particles of every real Pt/alumina patch, measured on its human mask as
    process measures a mask (0.4 nm per px, as if calibrated)."""
    out = []
    for mask_path in sorted((data_dir / "pt-alumina-haadf").glob("ptal_*_mask.png")):
        image = tifffile.imread(mask_path.with_name(mask_path.name.replace("_mask.png", ".tif")))
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
        out.append(measure_particles(label_particles(mask), image, 0.4))
    assert sum(map(len, out)) > 150
    return out


def test_figures_are_todays_on_real_particles(store_db, tmp_path, real_diameters):
    db = store_db
    for k, parts in enumerate(real_diameters):
        add_done(db, f"real/ptal_{k:03d}.tif", "real", parts, 0.4)
    d = np.array([p["ecd_nm"] for parts in real_diameters for p in parts])
    today = psd.summarise_sample(d, "nm", 1000)
    page = parse(write_sample_report(db, "real", tmp_path / "r"))
    assert int(page.ids["n"]) == today["n"]
    for key, element in (("d50", "d50"), ("d10", "d10"), ("d90", "d90"), ("mean", "mean"), ("std", "std")):
        assert page.ids[element].split()[0] == report.format_number(today[key]), key
    lo, hi = today["d50_ci95"]
    assert f"95 % CI {report.format_number(lo)}\u2013{report.format_number(hi)} nm" in " ".join(page.text)
    # the merged histogram (what a sample beyond 4,000 particles is summarised from) gives the
    # same figures as today's order statistics, and a d50 interval within the bootstrap's noise
    merged = SizeHistogram()
    for parts in real_diameters:
        merged = merged.combined(SizeHistogram.of([p["ecd_nm"] for p in parts]))
    big = summarise_histogram(merged, "nm")
    order = psd.summarise_sample(d, "nm", bootstrap=100_000)  # above the draws limit: order statistics
    for key in ("n", "d10", "d50", "d90", "mean", "std", "lognormal_median", "lognormal_sigma_g"):
        assert big[key] == pytest.approx(order[key], rel=1e-9), key
    assert big["d50_ci95"] == pytest.approx(order["d50_ci95"], rel=1e-9)
    boots = np.array([psd.summarise(d, "nm", 1000, seed=s)["d50_ci95"] for s in range(8)])
    spread = boots.max(axis=0) - boots.min(axis=0) + 1e-9
    assert np.all(np.abs(np.array(big["d50_ci95"]) - boots.mean(axis=0)) <= 3 * spread + 0.01 * today["d50"])


# --------------------------------------------------------------------------- paging and the CSV

def _csv_rows(path) -> list[dict]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # the BOM Excel needs, once at the start
        return list(csv.DictReader(f))


def test_a_large_sample_is_paged_and_its_csv_appended_never_doubled(store_db, tmp_path):
    db, reports = store_db, tmp_path / "r"
    for k in range(25):
        add_done(db, f"big/{k:03d}.tif", "big", particles(6, 0.2, seed=k), 0.2)
    kw = {"min_particles": 10, "bootstrap": 1000, "page_images": 10}
    rebuild_due(db, reports, **kw)
    page = parse(reports / report.sample_page_name("big"))
    assert int(page.ids["n"]) == 150
    assert len([t for t, a in page.tags if t == "tr"]) == 1 + 10  # the latest 10 images
    archives = sorted(reports.glob("big-*-images-*.html"))
    assert [a.name.rsplit("-", 1)[1] for a in archives] == ["1.html", "2.html"]
    assert "big/000.tif" in archives[0].read_text() and "big/019.tif" in archives[1].read_text()
    assert db.execute("SELECT COUNT(*) FROM report_dirty").fetchone()[0] == 0
    csv_path = reports / report.sample_csv_name("big")
    assert [int(r[" "]) for r in _csv_rows(csv_path)] == list(range(1, 151))
    # a new image is appended; an append cut short by a kill leaves bytes that are cut off first
    before, inode = archives[0].stat().st_mtime_ns, csv_path.stat().st_ino
    with csv_path.open("ab") as f:
        f.write(b"151,big/half-written")
    add_done(db, "big/025.tif", "big", particles(4, 0.2, seed=99), 0.2)
    rebuild_due(db, reports, **kw)
    rows = _csv_rows(csv_path)
    assert [int(r[" "]) for r in rows] == list(range(1, 155)) and rows[-1]["Label"] == "big/025.tif"
    assert csv_path.stat().st_ino == inode  # appended in place, not written again
    assert archives[0].stat().st_mtime_ns == before  # full archive pages are written once
    # an image already in the CSV and on an archive page changes: both are written again
    _finish(db, "big/003.tif", "big", particles(2, 0.2, seed=7), 0.2, "ab" * 32)
    rebuild_due(db, reports, **kw)
    rows = _csv_rows(csv_path)
    assert len(rows) == 150 and [r["Label"] for r in rows].count("big/003.tif") == 2
    assert csv_path.stat().st_ino != inode  # written again, swapped in atomically
    assert archives[0].stat().st_mtime_ns != before
    assert int(parse(reports / report.sample_page_name("big")).ids["n"]) == 150
    data = read_sample_data(db, "big", 1000, 10)
    assert data.counts["images"] == 26 and len(data.images) == 10


def test_a_sample_beyond_the_bootstrap_is_summarised_from_its_histogram(store_db, tmp_path):
    db = store_db
    for k in range(3):
        add_done(db, f"H/{k}.tif", "H", particles(400, 0.2, seed=k), 0.2)
    d = np.array([p["ecd_nm"] for k in range(3) for p in particles(400, 0.2, seed=k)])
    page = parse(write_sample_report(db, "H", tmp_path / "r", bootstrap=20_000))  # 1,200 x 20,000 > 4 M draws
    expected = psd.summarise_sample(d, "nm", 20_000)
    assert expected["ci_method"].startswith("order statistics")
    assert first_number(page.ids["d50"]) == pytest.approx(expected["d50"], abs=0.006)
    assert math.isclose(first_number(page.ids["d90"]), expected["d90"], abs_tol=0.006)
    assert "order statistics" in " ".join(page.text)
