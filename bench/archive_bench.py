"""Years of a facility (issue 26): the cost of one new image as the archive grows.

Builds stores of the project's own schema by bulk SQL (no analysis): 100 samples
plus one sample holding 20 % of the images, N images, P particles per image
(lognormal sizes), every image 'done', an empty file per image on a share
folder. Then, each in a fresh child process, median of 3:

- one new image (100 particles) stored through store.finish_done and its pages
  drawn as the report thread draws them (report_scheduler.rebuild_due: its
  sample page, CSV append, index), in an ordinary sample and in the big one:
  wall time, peak RSS, and RSS growth over the process before the image;
- the big sample's page and CSV sizes; `psdwatch report` (all pages);
- `psdwatch status --json` (a fresh process, as people run it);
- the check for deleted files: one time-limited slice (what the report thread
  spends per turn) and a whole pass, nothing changed.

Run: .venv/bin/python bench/archive_bench.py [--sizes 10000 100000 1000000] [--particles 100 100 10]
(make bench runs it). Writes bench/archive_results.json and archive_* rows of
bench/results.json; bench/run.py puts the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchmarks_page import bench_run, write_benchmarks  # noqa: E402 - bench/benchmarks_page.py
from psdwatch.daemon.store import sample_stats, core as store  # noqa: E402
from psdwatch.pipeline.measure.psd_histogram import SizeHistogram  # noqa: E402

K = 0.2  # nm per px of every image
START = datetime(2023, 1, 1, tzinfo=timezone.utc)
PSD = {"min_particles": 100, "bootstrap": 1000, "page_images": 500}


def _sample_of(i: np.ndarray, n: int) -> np.ndarray:
    """Sample index of image i: one in five goes to the big sample (index 100)."""
    return np.where(i % 5 == 0, 100, (i // 5) % 100)


def _name(s: int) -> str:
    return "big" if s == 100 else f"s{s:03d}"


def _particle_rows(first_id: int, count: int, per_image: int, rng) -> tuple[list, np.ndarray]:
    d = np.exp(rng.normal(math.log(15.0), math.log(1.35), (count, per_image)))
    xy = rng.uniform(10, 2000, (count, per_image, 2))
    rows = []
    for k in range(count):
        image_id = first_id + k
        for j in range(per_image):
            e = float(d[k, j])
            a, p = math.pi / 4 * e * e, math.pi * e * 1.05
            rows.append((image_id, j + 1, float(xy[k, j, 0]), float(xy[k, j, 1]), a, p, e, e * 1.1, e * 0.9,
                         a * K * K, p * K, e * K, e * 1.1 * K, e * 0.9 * K, 0.91, 0.97, 140.0, "profile"))
    return rows, d * K


def _stamp(i: int) -> str:
    """Processing times a few seconds apart, as a steady stream of frames gives them."""
    return (START + timedelta(seconds=3 * i)).isoformat(timespec="milliseconds")


def build(path: Path, share: Path, n: int, per_image: int, chunk: int = 5_000) -> dict:
    """The store: bulk inserts with the kept numbers' triggers off, then the kept
    numbers filled as sample_stats fills them (histograms from the sizes drawn)."""
    t0 = time.perf_counter()
    db = store.open_store(path)
    conn = db.conn
    for name in sample_stats.TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("PRAGMA synchronous = OFF")
    rng = np.random.default_rng(0)
    hists: dict[str, SizeHistogram] = {}
    part_cols = [c for c in store.PARTICLE_COLUMNS if c != "id"]
    for start in range(0, n, chunk):
        ids = np.arange(start, min(n, start + chunk))
        samples = _sample_of(ids, n)
        images = [(int(i) + 1, f"{_name(int(s))}/img_{int(i):07d}.tif", _name(int(s)), f"{int(i):064x}", "done",
                   K, "metadata", "starter-v2", "unet", per_image, "[]", "{}", "{}", 1000, int(i),
                   _stamp(int(i))) for i, s in zip(ids, samples)]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO images (id, path, sample, sha256, status, nm_per_px, scale_source, model, "
                         "engine, n_particles, flags, psd, scale_details, size, mtime_ns, processed_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", images)
        rows, d = _particle_rows(int(ids[0]) + 1, ids.size, per_image, rng)
        conn.executemany(f"INSERT INTO particles ({', '.join(part_cols)}) VALUES ({', '.join('?' * len(part_cols))})",
                         rows)
        conn.executemany("INSERT INTO image_summaries (image_id, sample, unit, n, d50) VALUES (?, ?, 'nm', ?, ?)",
                         [(int(i) + 1, _name(int(s)), per_image, float(np.median(d[k])))
                          for k, (i, s) in enumerate(zip(ids, samples))])
        conn.execute("COMMIT")
        for s in np.unique(samples):
            name = _name(int(s))
            hists[name] = hists.get(name, SizeHistogram()).combined(SizeHistogram.of(d[samples == s].ravel()))
        for s in {_name(int(s)) for s in np.unique(samples)}:
            (share / s).mkdir(parents=True, exist_ok=True)
        for _, relpath, *_ in images:
            (share / relpath).touch()
    conn.execute("BEGIN")
    conn.executemany("INSERT OR REPLACE INTO sample_psd (sample, unit, hist) VALUES (?, 'nm', ?)",
                     [(s, h.to_bytes()) for s, h in hists.items()])
    sample_stats._refill_counts(conn)
    for name, (when, body) in sample_stats.TRIGGERS.items():
        conn.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    db.close()
    return {"images": n, "particles_per_image": per_image, "build_s": round(time.perf_counter() - t0, 1),
            "db_mb": round(path.stat().st_size / 2**20)}


# --------------------------------------------------------------------------- child measurements

def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in MB; not
    ru_maxrss, which a child started by a large parent inherits on Linux."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def _new_image(db, reports: Path, sample: str, share: Path) -> float:
    """One image of 100 particles stored as the worker stores it, then its pages drawn;
    returns the seconds the storing took."""
    from psdwatch.daemon.report import scheduler as report_scheduler

    d = np.exp(np.random.default_rng().normal(math.log(15.0), math.log(1.35), 100))
    parts = [{"id": j + 1, "x": 10.0, "y": 10.0, "area_px": math.pi / 4 * e * e, "perimeter_px": math.pi * e,
              "ecd_px": e, "ecd_nm": e * K, "area_nm2": math.pi / 4 * e * e * K * K} for j, e in enumerate(d)]
    rel = f"{sample}/new_{time.time_ns()}.tif"
    (share / rel).touch()  # the file is on the share: the deleted-file check finds nothing changed
    t = time.perf_counter()
    store.enqueue(db, rel, sample, 1, time.time_ns())
    job = store.claim_next(db)
    store.finish_done(db, job, os.urandom(32).hex(), {"nm_per_px": K, "particles": parts, "flags": [],
                                                      "model": "starter-v2"})
    stored = time.perf_counter() - t
    report_scheduler.rebuild_due(db, reports, **PSD)
    return stored


def measure(kind: str, db_path: Path, reports: Path, share: Path) -> dict:
    """One measurement in this (fresh) process."""
    from psdwatch.daemon.report import scheduler as report_scheduler
    from psdwatch.daemon.watch.missing_scan import MissingScan

    db = store.open_store(db_path)
    out: dict = {}
    if kind.startswith("new_"):
        # The report thread is long-lived: its templates are compiled and scipy.stats is
        # imported once. A first image elsewhere warms this process up the same way.
        t = time.perf_counter()
        _new_image(db, reports, "s050", share)
        out["cold_s"] = round(time.perf_counter() - t, 3)
    before = _rss_mb()
    t = time.perf_counter()
    if kind in ("new_ordinary", "new_big"):
        out["stored_s"] = round(_new_image(db, reports, "big" if kind == "new_big" else "s007", share), 3)
    elif kind == "report_all":
        report_scheduler.rebuild_due(db, reports, everything=True, **PSD)
    elif kind == "missing_slice":
        scan = MissingScan(share, every_s=600)
        out["changed"] = len(scan.step(db, budget_s=0.5))
        out["cursor"] = scan.cursor
    elif kind == "missing_pass":
        scan = MissingScan(share, every_s=600)
        while True:
            out["changed"] = out.get("changed", 0) + len(scan.step(db, budget_s=5.0))
            if scan.cursor is None:
                break
    out.update({"wall_s": round(time.perf_counter() - t, 3),
                "peak_rss_mb": round(_rss_mb("VmHWM")), "rss_growth_mb": round(_rss_mb("VmHWM") - before)})
    return out


def child(kind: str, db_path: Path, reports: Path, share: Path) -> dict:
    cmd = [sys.executable, __file__, "--measure", kind, str(db_path), str(reports), str(share)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])


def median_of(kind: str, runs: int, *paths) -> dict:
    results = [child(kind, *paths) for _ in range(runs)]
    return {k: statistics.median(r[k] for r in results) if isinstance(v, (int, float)) else v
            for k, v in results[0].items()}


def status_s(db_path: Path, runs: int) -> float:
    config = db_path.parent / "bench.toml"
    config.write_text(f'[store]\ndatabase = "{db_path}"\n[models]\ndir = "{db_path.parent / "no-models"}"\n'
                      '[segment]\nengine = "classical"\n')
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "status", "--json", "--config", str(config)],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 2)


def check_big_page(db_path: Path, reports: Path) -> dict:
    """After the new images: the big sample's page and the index say the n and d50 of all
    its particles (read here from the store, outside any timing)."""
    import re

    from psdwatch.daemon.report import index as report

    db = store.open_store(db_path)
    d = np.array([v for (v,) in db.execute("SELECT p.ecd_nm FROM particles p JOIN images i ON i.id = p.image_id "
                                           "WHERE i.sample = 'big' AND i.status = 'done'")], float)
    page = (reports / report.sample_page_name("big")).read_text()
    n_page = int(re.search(r'id="n">(\d+)<', page).group(1))
    d50_page = re.search(r'id="d50">([\d.]+) ', page).group(1)
    index = (reports / "index.html").read_text()
    row = re.search(r'href="' + re.escape(report.sample_page_name("big")) + r'">big</a></td>(.*?)</tr>', index, re.S)
    cells = re.findall(r'<td class="num">([^<]*)(?:<b>([^<]*)</b>)?', row.group(1))
    d50_true = report.format_number(float(np.percentile(d, 50)))
    db.close()
    return {"n_particles": int(d.size), "n_page": n_page, "d50_particles": d50_true, "d50_page": d50_page,
            "index_row": [c[0] or c[1] for c in cells[:3]],
            "right": n_page == d.size and d50_page == d50_true and str(d.size) in row.group(1)
            and f"{d50_true} nm" in row.group(1)}


def run_size(n: int, per_image: int, runs: int, work: Path, keep: bool = False) -> dict:
    folder = work / f"store_{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db_path, reports, share = folder / "psdwatch.sqlite", folder / "reports", folder / "share"
    print(f"building {n} images x {per_image} particles ...", flush=True)
    row = build(db_path, share, n, per_image)
    print(f"  built in {row['build_s']} s, {row['db_mb']} MB; all pages once ...", flush=True)
    row["report_first_s"] = child("report_all", db_path, reports, share)["wall_s"]  # full CSVs written here
    paths = (db_path, reports, share)
    for kind in ("new_ordinary", "new_big", "report_all", "missing_slice"):
        print(f"  {kind} ...", flush=True)
        row[kind] = median_of(kind, runs, *paths)
    row["missing_pass"] = child("missing_pass", *paths)
    row["status_json_s"] = status_s(db_path, runs)
    row["big_page_right"] = check_big_page(db_path, reports)
    slug = next(p for p in reports.glob("big-*.html") if "-images-" not in p.name)
    row["big_page_mb"] = round(slug.stat().st_size / 2**20, 2)
    row["big_csv_mb"] = round(slug.with_suffix(".csv").stat().st_size / 2**20)
    row["index_kb"] = round((reports / "index.html").stat().st_size / 1024)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--particles", type=int, nargs="+", default=[100, 100, 10],
                        help="particles per image, one per size (1M x 100 would be 17 GB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="folder for the stores (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the stores built (in --work)")
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, *paths = args.measure
        print(json.dumps(measure(kind, *map(Path, paths))))
        return 0
    out_path = REPO / "bench" / "archive_results.json"
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    work = args.work or Path(tempfile.mkdtemp(prefix="psdwatch-archive-"))
    for n, per_image in zip(args.sizes, args.particles):
        results[str(n)] = {**run_size(n, per_image, args.runs, work, args.keep), "date": time.strftime("%Y-%m-%d %H:%M"),
                           "run": bench_run()}
        out_path.write_text(json.dumps(results, indent=1))
    rows_path = REPO / "bench" / "results.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    for n, r in results.items():
        rows[f"archive_new_image_big_sample_s_{n}"] = r["new_big"]["wall_s"]
        rows[f"archive_new_image_big_sample_rss_growth_mb_{n}"] = r["new_big"]["rss_growth_mb"]
        rows[f"archive_new_image_ordinary_sample_s_{n}"] = r["new_ordinary"]["wall_s"]
        rows[f"archive_status_json_s_{n}"] = r["status_json_s"]
    rows_path.write_text(json.dumps(rows, indent=2))
    write_benchmarks()  # BENCHMARKS.md again, with this table
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
