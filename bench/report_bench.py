"""Report regeneration cost on a real SQLite store.

- one sample page (HTML + CSV) with 10^3 and with 10^5 particles;
- the same 10^3-particle sample page when the store holds 10 samples and when
  it holds 1000 (it must not grow);
- index.html with 1000 samples;
- a thumbnail of a 2048 x 2048 image.

Run: .venv/bin/python bench/report_bench.py [OUT.json]  (make bench runs it)
Light on purpose (2 shared cores): synthetic particles, no images analysed.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks_page import bench_run  # noqa: E402 - bench/benchmarks_page.py
from psdwatch.daemon.report import index as report  # noqa: E402
from psdwatch.daemon.store import core as store  # noqa: E402


def particles(n: int, k: float | None, rng: np.random.Generator) -> list[dict]:
    d = np.exp(rng.normal(math.log(3.0 / (k or 0.25)), math.log(1.35), n))
    xy = rng.uniform(10, 2000, (n, 2))
    out = []
    for i in range(n):
        e = float(d[i])
        a, p = math.pi / 4 * e * e, math.pi * e * 1.05
        out.append({"id": i + 1, "x": float(xy[i, 0]), "y": float(xy[i, 1]), "area_px": a,
                    "perimeter_px": p, "ecd_px": e, "feret_max_px": 1.1 * e, "feret_min_px": 0.9 * e,
                    "area_nm2": a * k * k if k else None, "perimeter_nm": p * k if k else None,
                    "ecd_nm": e * k if k else None, "feret_max_nm": 1.1 * e * k if k else None,
                    "feret_min_nm": 0.9 * e * k if k else None, "circularity": 0.9,
                    "solidity": 0.96, "mean_intensity": 140.0})
    return out


def add_sample(db, sample: str, images: int, per_image: int, rng, unscaled: int = 0) -> None:
    for i in range(images):
        k = None if i < unscaled else 0.2
        rel = f"{sample}/img_{i:04d}.tif"
        store.enqueue(db, rel, sample, 1, 1)
        job = store.claim_next(db)
        store.finish_done(db, job, hashlib.sha256(rel.encode()).hexdigest(), {
            "nm_per_px": k, "scale_source": "metadata" if k else None, "model": "unet-v3",
            "engine": "unet", "particles": particles(per_image, k, rng),
            "flags": [] if k else ["scale_unknown"], "psd": {}, "scale": {}})


def timed(fn, repeat: int = 3) -> dict:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"first_s": round(runs[0], 4), "median_s": round(statistics.median(runs), 4)}


def main(out: Path) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        db = store.open_store(tmp / "psdwatch.sqlite")
        db.execute("PRAGMA synchronous = OFF")  # filling only; the reports read
        reports = tmp / "reports"
        rng = np.random.default_rng(0)
        results: dict = {}

        add_sample(db, "probe 1e3", 10, 100, rng, unscaled=1)
        for s in range(9):
            add_sample(db, f"small {s:04d}", 2, 50, rng)
        results["sample_1e3_at_10_samples"] = timed(lambda: report.write_sample_report(db, "probe 1e3", reports))

        t = time.perf_counter()
        add_sample(db, "big 1e5", 100, 1000, rng, unscaled=5)
        results["fill_1e5_s"] = round(time.perf_counter() - t, 2)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results["sample_1e5"] = timed(lambda: report.write_sample_report(db, "big 1e5", reports))
        results["sample_1e5"]["html_kb"] = round((reports / report.sample_page_name("big 1e5")).stat().st_size / 1024)
        results["sample_1e5"]["csv_kb"] = round((reports / report.sample_csv_name("big 1e5")).stat().st_size / 1024)
        results["sample_1e5"]["peak_rss_growth_mb"] = round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1)

        t = time.perf_counter()
        for s in range(9, 998):
            add_sample(db, f"small {s:04d}", 2, 50, rng)
        results["fill_1000_samples_s"] = round(time.perf_counter() - t, 2)
        db.execute("ANALYZE")
        n_samples = db.execute("SELECT COUNT(DISTINCT sample) FROM images").fetchone()[0]
        n_particles = db.execute("SELECT COUNT(*) FROM particles").fetchone()[0]
        results["store"] = {"samples": n_samples, "particles": n_particles}
        results["sample_1e3_at_1000_samples"] = timed(lambda: report.write_sample_report(db, "probe 1e3", reports))

        t = time.perf_counter()
        for (sample,) in db.execute("SELECT DISTINCT sample FROM images").fetchall():
            if sample != "big 1e5":
                report.write_sample_report(db, sample, reports)
        results["all_small_pages_s"] = round(time.perf_counter() - t, 2)
        results["index_1000_samples"] = timed(lambda: report.write_index(db, reports), repeat=5)

        data = np.random.default_rng(1).normal(100, 20, (2048, 2048)).astype(np.float32)
        mask = np.zeros_like(data, bool)
        yy, xx = np.mgrid[:2048, :2048]
        for cy, cx in np.random.default_rng(2).uniform(40, 2008, (300, 2)):
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < 64
        import cv2
        _, labels = cv2.connectedComponents(mask.astype(np.uint8))
        fake = SimpleNamespace(data=data, mask=mask, labels=labels, image="bench")
        results["thumbnail_2048"] = timed(lambda: report.write_thumbnail(fake, reports / "thumbs" / "b.png"))
        results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        db.close()
        results.update({"date": time.strftime("%Y-%m-%d %H:%M"), "run": bench_run()})
        out.write_text(json.dumps(results, indent=1))
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "report_results.json"
    print(json.dumps(main(target), indent=1))
