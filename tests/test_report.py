"""The reports on a real SQLite store and real files: numbers, CSV, escaping,
file names, unknown scales, quarantine, well-formed HTML, the query plans that
keep a sample's page independent of the store's size, and a real headless
Chromium that must render the page offline without console errors."""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from psdwatch.daemon import report
from psdwatch.daemon import store
from psdwatch.daemon.watch.missing_scan import MissingScan
from psdwatch.pipeline.measure import psd

HOSTILE = ["<script>alert(1)</script>", 'Pt "quoted" \'single\' & <b>', "Pt/Al₂O₃ é 試料",
           "Pt-Al2O3-e", "A", "a", "index", "..", "CON"]


# --------------------------------------------------------------------------- helpers

def particles(n: int, nm_per_px: float | None, median_nm: float = 3.0, seed: int = 0) -> list[dict]:
    """analysis_record-like particles with lognormal diameters (in nm when scaled,
    else in px around 12 px)."""
    rng = np.random.default_rng(seed)
    ecd_px = np.exp(rng.normal(math.log(median_nm / (nm_per_px or 0.25)), math.log(1.35), n))
    out = []
    for i, d in enumerate(ecd_px):
        area = math.pi / 4 * d * d
        perim = math.pi * d * 1.05
        k = nm_per_px
        out.append({"id": i + 1, "x": float(rng.uniform(10, 500)), "y": float(rng.uniform(10, 500)),
                    "area_px": area, "perimeter_px": perim, "ecd_px": float(d),
                    "feret_max_px": d * 1.1, "feret_min_px": d * 0.9,
                    "area_nm2": area * k * k if k else None, "perimeter_nm": perim * k if k else None,
                    "ecd_nm": float(d * k) if k else None,
                    "feret_max_nm": d * 1.1 * k if k else None, "feret_min_nm": d * 0.9 * k if k else None,
                    "circularity": 0.91, "solidity": 0.97, "mean_intensity": 143.5})
    return out


def add_done(db, relpath: str, sample: str, parts: list[dict], nm_per_px: float | None,
             flags: list[str] | None = None, sha: str | None = None, scale_details: dict | None = None,
             model: str = "unet-test-v1"):
    sha = sha or hashlib.sha256(relpath.encode()).hexdigest()
    store.enqueue(db, relpath, sample, len(relpath), 1)
    job = store.claim_next(db)
    rec = {"image": relpath, "sample": sample, "nm_per_px": nm_per_px,
           "scale_source": "metadata" if nm_per_px else None,
           "scale_text": f"{nm_per_px} nm" if nm_per_px else None, "model": model,
           "engine": "unet", "model_sha256": "ab" * 32, "particles": parts, "psd": {},
           "flags": (flags or []) + ([] if nm_per_px else ["scale_unknown"]),
           "scale": scale_details or {}, "timings_s": {"segment_s": 0.5}}
    return store.finish_done(db, job, sha, rec)


def add_quarantined(db, relpath: str, sample: str, reason: str):
    store.enqueue(db, relpath, sample, len(relpath), 1)
    return store.finish_quarantined(db, store.claim_next(db), reason)


@pytest.fixture
def db(tmp_path: Path):
    db = store.open_store(tmp_path / "state" / "psdwatch.sqlite")
    yield db
    assert store.problems(db) == []
    db.close()


class Checker(HTMLParser):
    """Well-formedness: every non-void element closed in order; collects
    start tags, text and element ids."""
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.text, self.ids = [], [], [], [], {}
        self._open_ids: list[tuple[str, int]] = []  # (id, depth of its element)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if attrs.get("id"):
            self.ids[attrs["id"]] = ""
            self._open_ids.append((attrs["id"], len(self.stack)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        self._open_ids = [(i, d) for i, d in self._open_ids if d <= len(self.stack)]

    def handle_data(self, data):
        self.text.append(data)
        for element_id, _ in self._open_ids:
            self.ids[element_id] += data

    def close(self):
        super().close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")


def parse(path: Path) -> Checker:
    checker = Checker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    return checker


def first_number(text: str) -> float:
    return float(re.search(r"-?\d+(?:\.\d+)?", text).group())


# --------------------------------------------------------------------------- numbers, CSV

def test_page_shows_the_psd_computed_from_the_particles(db, tmp_path):
    reports = tmp_path / "reports"
    parts = [particles(120, 0.2, 3.0, seed=s) for s in range(3)]
    for i, p in enumerate(parts):
        add_done(db, f"S1/img_{i}.tif", "S1", p, 0.2)
    page = report.write_sample_report(db, "S1", reports)
    d = np.array([q["ecd_nm"] for p in parts for q in p])
    expected = psd.summarise(d, "nm", 1000)
    doc = parse(page)
    assert doc.errors == []
    assert int(doc.ids["n"]) == 360
    for key, element in (("d50", "d50"), ("d10", "d10"), ("d90", "d90"), ("mean", "mean"),
                         ("std", "std"), ("lognormal_median", "lognormal-median")):
        assert first_number(doc.ids[element]) == pytest.approx(expected[key], abs=0.006), key
    assert first_number(doc.ids["sigma-g"]) == pytest.approx(expected["lognormal_sigma_g"], abs=6e-4)
    lo, hi = expected["d50_ci95"]
    html = page.read_text()
    assert f"95 % CI {lo:.2f}\u2013{hi:.2f} nm" in " ".join(doc.text)
    # the plots are there, as inline SVG, with bars that add up to n
    svgs = [a for t, a in doc.tags if t == "svg"]
    assert len(svgs) == 2
    bar_titles = re.findall(r"<title>[^<]*nm: (\d+)</title>", html)
    assert sum(map(int, bar_titles)) == 360
    # the index reads the same numbers from the cache, in one query
    index = parse(report.write_index(db, reports))
    assert index.errors == []
    row_text = " ".join(index.text)
    assert f"{expected['d50']:.2f} nm" in row_text and "360" in row_text


def test_large_samples_use_an_order_statistic_interval(db, tmp_path):
    d = np.exp(np.random.default_rng(3).normal(1.0, 0.3, 20_000))
    big = psd.summarise_sample(d, "nm", 1000)
    boot = psd.summarise(d, "nm", 200)
    assert big["ci_method"].startswith("order statistics")
    assert big["d50"] == boot["d50"]
    assert big["d50_ci95"][0] == pytest.approx(boot["d50_ci95"][0], rel=0.01)
    assert big["d50_ci95"][1] == pytest.approx(boot["d50_ci95"][1], rel=0.01)
    small = psd.summarise_sample(d[:500], "nm", 1000)
    assert small["d50_ci95"] == psd.summarise(d[:500], "nm", 1000)["d50_ci95"]


def test_csv_has_one_row_per_particle_with_units(db, tmp_path):
    reports = tmp_path / "reports"
    scaled = particles(80, 0.5, seed=1)
    unscaled = particles(30, None, seed=2)
    add_done(db, "S2/a.tif", "S2", scaled, 0.5)
    add_done(db, "S2/b.tif", "S2", unscaled, None)
    add_done(db, "S2/copy_of_a.tif", "S2", scaled, 0.5, sha=hashlib.sha256(b"S2/a.tif").hexdigest())
    add_quarantined(db, "S2/bad.tif", "S2", "unreadable")
    report.write_sample_report(db, "S2", reports)
    path = reports / report.sample_csv_name("S2")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == report.CSV_COLUMNS
    assert len(rows) == 110  # the duplicate and the quarantined file add none
    assert [int(r[" "]) for r in rows] == list(range(1, 111))
    by_image = {}
    for r in rows:
        by_image.setdefault(r["Label"], []).append(r)
    assert {k: len(v) for k, v in by_image.items()} == {"S2/a.tif": 80, "S2/b.tif": 30}
    first = by_image["S2/a.tif"][0]
    assert first["Unit"] == "nm" and first["ScaleSource"] == "metadata"
    assert float(first["ECD"]) == pytest.approx(scaled[0]["ecd_nm"], abs=1e-4)
    assert float(first["Area"]) == pytest.approx(scaled[0]["area_nm2"], abs=1e-3)
    assert float(first["X"]) == pytest.approx(scaled[0]["x"] * 0.5, abs=1e-3)
    assert float(first["Feret"]) == pytest.approx(scaled[0]["feret_max_nm"], abs=1e-3)
    assert float(first["Circ."]) == pytest.approx(0.91)
    px = by_image["S2/b.tif"][0]
    assert px["Unit"] == "px" and px["ScaleSource"] == "none"
    assert float(px["ECD"]) == pytest.approx(unscaled[0]["ecd_px"], abs=1e-4)


# --------------------------------------------------------------------------- hostile names

def test_hostile_names_are_escaped_and_get_safe_distinct_files(db, tmp_path):
    reports = tmp_path / "reports"
    for i, sample in enumerate(HOSTILE):
        add_done(db, f"{sample}/<img src=x onerror=alert(2)> \"{i}\".tif", sample,
                 particles(20, 0.3, seed=i), 0.3)
        add_quarantined(db, f"{sample}/q{i}.tif", sample, "reason with <script>alert(3)</script>")
        report.write_sample_report(db, sample, reports)
    index = report.write_index(db, reports)
    names = sorted(p.name for p in reports.glob("*.html"))
    assert len(names) == len(HOSTILE) + 1
    stems = [n[:-5] for n in names if n != "index.html"]
    assert len({s.lower() for s in stems}) == len(HOSTILE)  # distinct on case-insensitive shares too
    for stem in stems:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*-[0-9a-f]{10}", stem), stem
        assert (reports / f"{stem}.csv").is_file()
    for page in [*reports.glob("*.html")]:
        doc = parse(page)
        assert doc.errors == [], page.name
        assert not [t for t, a in doc.tags if t == "script"], page.name
        assert not [a for t, a in doc.tags if t == "img" and "onerror" in a], page.name
        html = page.read_text()
        assert "<script>alert" not in html and "<img src=x" not in html and "& <b>" not in html
    html = index.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&amp; &lt;b&gt;" in html
    assert "Pt/Al₂O₃ é 試料" in html
    text = " ".join(parse(index).text)
    for sample in HOSTILE:
        assert sample in text  # shown as text, exactly
    hostile_page = reports / report.sample_page_name(HOSTILE[0])
    text = " ".join(parse(hostile_page).text)
    assert "reason with <script>alert(3)</script>" in text and '"0".tif' in text


# --------------------------------------------------------------------------- flags

def test_images_without_scale_stay_out_of_the_nm_psd(db, tmp_path):
    reports = tmp_path / "reports"
    scaled = particles(150, 0.2, 3.0, seed=4)
    unscaled = particles(70, None, seed=5)
    add_done(db, "S3/scaled.tif", "S3", scaled, 0.2)
    add_done(db, "S3/unscaled.tif", "S3", unscaled, None)
    page = report.write_sample_report(db, "S3", reports)
    doc = parse(page)
    nm = psd.summarise([p["ecd_nm"] for p in scaled], "nm", 1000)
    assert int(doc.ids["n"]) == 150
    assert first_number(doc.ids["d50"]) == pytest.approx(nm["d50"], abs=0.006)
    assert int(doc.ids["n-px"]) == 70
    px = psd.summarise([p["ecd_px"] for p in unscaled], "px", 0)
    assert first_number(doc.ids["d50-px"]) == pytest.approx(px["d50"], abs=0.06)
    assert "unscaled" in doc.ids  # the separate section
    text = " ".join(doc.text)
    assert "1 image has no scale" in text and "not part of the nm PSD" in text
    cached = db.execute("SELECT n, n_px FROM sample_summaries WHERE sample = 'S3'").fetchone()
    assert tuple(cached) == (150, 70)


def test_only_unscaled_images_give_no_nm_psd(db, tmp_path):
    add_done(db, "S4/u.tif", "S4", particles(40, None), None)
    doc = parse(report.write_sample_report(db, "S4", tmp_path / "r"))
    assert doc.errors == [] and "n" not in doc.ids and int(doc.ids["n-px"]) == 40
    assert "No particle with a known scale yet" in " ".join(doc.text)


def test_quarantine_duplicates_and_scale_flags_are_shown(db, tmp_path):
    reports = tmp_path / "reports"
    add_done(db, "S5/a.tif", "S5", particles(30, 0.2), 0.2, sha="c" * 64)
    add_done(db, "S5/a_again.tif", "S5", particles(30, 0.2), 0.2, sha="c" * 64)
    add_done(db, "S5/disputed.tif", "S5", particles(40, 0.25, seed=9), 0.25,
             flags=["scale_disputed"], scale_details={"disagreement_pct": 7.5})
    add_done(db, "S5/assumed.tif", "S5", particles(10, 0.3, seed=8), 0.3, flags=["scale_from_config"])
    add_quarantined(db, "S5/broken.tif", "S5", "not an image: truncated TIFF (read 12 of 4096 bytes)")
    add_quarantined(db, "S5/crasher.tif", "S5", "crashed 3 times while processing")
    doc = parse(report.write_sample_report(db, "S5", reports))
    assert doc.errors == []
    text = " ".join(doc.text)
    assert "quarantined" in doc.ids
    assert "not an image: truncated TIFF (read 12 of 4096 bytes)" in text
    assert "crashed 3 times while processing" in text
    assert "2 files of this sample were quarantined" in text
    assert "duplicate of" in text and "a.tif" in text and "counted once" in text
    assert "scale disputed: file calibration and scale bar disagree by 7.5 %" in text
    assert "scale assumed from the configured fallback" in text
    assert "50 of the 80 particles in the nm PSD come from 2 images whose scale is questionable" in text
    assert "Only 80 particles (fewer than 100)" in text
    index = parse(report.write_index(db, reports))
    itext = " ".join(index.text)
    assert "2 quarantined" in itext and "1 duplicate" in itext and "few particles" in itext


def test_index_counts_and_marks_stale_pages(db, tmp_path):
    reports = tmp_path / "reports"
    assert "No images yet" in " ".join(parse(report.write_index(db, reports)).text)
    add_done(db, "A/1.tif", "A", particles(10, 0.2), 0.2)
    add_done(db, "B/1.tif", "B", particles(10, 0.2), 0.2)
    report.write_sample_report(db, "A", reports)
    report.write_sample_report(db, "B", reports)
    add_done(db, "A/2.tif", "A", particles(10, 0.2, seed=3), 0.2)  # after A's page
    store.enqueue(db, "B/2.tif", "B", 5, 5)  # waiting: add_done claims the oldest job
    store.enqueue(db, "C/1.tif", "C", 5, 5)
    doc = parse(report.write_index(db, reports))
    assert doc.errors == []
    totals = " ".join(doc.text[:40])
    assert "2 queued" in totals and "3 done" in totals and "0 quarantined" in totals
    links = {a["href"] for t, a in doc.tags if t == "a" and a.get("href", "").endswith(".html")}
    assert links == {"index.html", report.sample_page_name("A"), report.sample_page_name("B")}
    assert "report updating" in " ".join(doc.text)
    report.write_sample_report(db, "A", reports)
    assert "report updating" not in " ".join(parse(report.write_index(db, reports)).text)


# --------------------------------------------------------------------------- cost and files

def test_a_sample_measured_with_two_models_is_named_on_its_page_the_index_and_status(db, tmp_path):
    reports = tmp_path / "reports"
    add_done(db, "mixed/a.tif", "mixed", particles(40, 0.2, seed=1), 0.2, model="starter-v1")
    add_done(db, "mixed/b.tif", "mixed", particles(40, 0.2, seed=2), 0.2, model="starter-v2")
    add_done(db, "mixed/c.tif", "mixed", particles(40, 0.2, seed=3), 0.2, model="starter-v2")
    add_done(db, "one/a.tif", "one", particles(40, 0.2, seed=4), 0.2, model="starter-v2")
    page = report.write_sample_report(db, "mixed", reports)
    text = " ".join(parse(page).text)
    assert "Mixed models" in text and "starter-v1 (1 image)" in text and "starter-v2 (2 images)" in text
    assert "Mixed models" not in " ".join(parse(report.write_sample_report(db, "one", reports)).text)
    index = " ".join(parse(report.write_index(db, reports)).text)
    assert index.count("2 models") == 1
    assert "2 models: starter-v1 (1 image), starter-v2 (2 images)" in index
    assert store.counts(db)["mixed_model_samples"] == 1
    assert store.counts(db)["mixed_models"] == {"mixed": {"starter-v1": 1, "starter-v2": 2}}


def _plan(db, sql: str, params) -> str:
    return " | ".join(r[-1] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())


def test_sample_queries_use_indexes_only(db, tmp_path):
    """Regenerating one sample reads its rows through indexes: no full scan of
    images or particles, so the cost does not grow with other samples."""
    for s in range(30):
        add_done(db, f"S{s}/1.tif", f"S{s}", particles(5, 0.2, seed=s), 0.2)
    db.execute("ANALYZE")
    seen = []
    db.conn.set_trace_callback(seen.append)
    try:
        report.write_sample_report(db, "S7", tmp_path / "r")
    finally:
        db.conn.set_trace_callback(None)
    selects = [q for q in seen if q.lstrip().upper().startswith("SELECT") and "sample" in q]
    assert selects
    for q in selects:
        plan = _plan(db, q.replace("'S7'", "?"), ["S7"]) if "?" not in q else _plan(db, q, ["S7"])
        assert "USING" in plan and not re.search(r"SCAN (i|p|images|particles)\b(?! USING)", plan), plan


def test_files_are_written_atomically_and_readable(db, tmp_path):
    reports = tmp_path / "reports"
    add_done(db, "S6/1.tif", "S6", particles(10, 0.2), 0.2)
    for _ in range(3):
        report.write_sample_report(db, "S6", reports)
        report.write_index(db, reports)
    assert not [p for p in reports.rglob("*") if p.name.endswith(".tmp")]
    for p in reports.glob("*.*"):
        assert p.stat().st_mode & 0o044 == 0o044, p  # colleagues on the share can read them
    stale = reports / ".index.html.abc.tmp"
    stale.write_text("left by a killed writer")
    os.utime(stale, (1, 1))
    report.write_index(db, reports)
    assert not stale.exists()


def test_sample_slug_is_safe_stable_and_distinct():
    slugs = [report.sample_slug(s) for s in HOSTILE + ["e\u0301", "\u00e9", "", " ", "x" * 300]]
    assert len(set(slugs)) == len(slugs)
    assert len({s.lower() for s in slugs}) == len(slugs)
    for s in slugs:
        assert re.fullmatch(r"[A-Za-z0-9-]{1,60}", s) and not s.startswith("-"), s
    assert report.sample_slug("Pt/Al₂O₃ é 試料") == report.sample_slug("Pt/Al₂O₃ é 試料")
    assert report.sample_slug("Pt/Al₂O₃ é 試料").startswith("Pt-Al2O3-e-")


# --------------------------------------------------------------------------- thumbnails

@pytest.fixture(scope="module")
def analyses(tmp_path_factory):
    """Real images through the real pipeline: two with a scale bar, one without."""
    from psdwatch.pipeline import synth
    from psdwatch.pipeline.analyse import Settings, analyse_image
    share = tmp_path_factory.mktemp("share")
    out = []
    for i, (seed, ocr) in enumerate([(3, True), (11, True), (5, False)]):
        path = synth.write_example(share, f"frame_{i:02d}",
                                   *synth.synth_image(synth.SynthSpec(size=640, seed=seed)))
        out.append((path, analyse_image(path, Settings(engine="classical", ocr=ocr, bootstrap=200))))
    return out


def test_thumbnail_shows_outlines_and_is_small(analyses, tmp_path):
    path, analysis = analyses[0]
    target = tmp_path / "thumbs" / "t.png"
    assert report.write_thumbnail(analysis, target, max_px=256) == target
    img = cv2.imread(str(target), cv2.IMREAD_COLOR)
    assert max(img.shape[:2]) == 256
    b, g, r = (img[..., c].astype(int) for c in range(3))
    amber = (r > 200) & (g > 150) & (b < 90)
    assert amber.sum() > 10 * len(analysis.particles) ** 0 and amber.sum() > 50
    grey = img[~amber]
    assert grey.std() > 10  # an image, not a blank
    report.write_thumbnail(analysis, target, max_px=256)  # overwrite in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["t.png"]


# --------------------------------------------------------------------------- browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(url: str, png: Path, profile: Path, height: int = 1600) -> str:
    """Chromium headless, offline-ish flags; returns its stderr (console log)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
           f"--window-size=1200,{height}", "--enable-logging=stderr", "--v=0", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def console_errors(log: str, page: Path) -> list[str]:
    """Console messages and failed loads that concern the page (not Chromium's
    own D-Bus noise)."""
    return [line for line in log.splitlines()
            if ("CONSOLE" in line or "ERR_FILE_NOT_FOUND" in line or "Failed to load" in line)
            and (page.name in line or "file://" in line or "CONSOLE" in line)]


@pytest.fixture(scope="module")
def rendered(analyses, tmp_path_factory):
    """A realistic sample: real images analysed by the pipeline, thumbnails,
    one image without scale, a quarantined file and a duplicate."""
    root = tmp_path_factory.mktemp("render")
    db = store.open_store(root / "state" / "psdwatch.sqlite")
    reports = root / "reports"
    sample = 'Pt/Al₂O₃ 450 °C <script>alert(1)</script> "batch 7"'
    from psdwatch.pipeline.analyse import analysis_record
    for path, analysis in analyses:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        report.write_thumbnail(analysis, report.thumbnail_path(reports, sha))
        store.enqueue(db, f"{sample}/{path.name}", sample, 1, 1)
        store.finish_done(db, store.claim_next(db), sha, analysis_record(analysis, sample))
    first_sha = hashlib.sha256(analyses[0][0].read_bytes()).hexdigest()
    store.enqueue(db, f"{sample}/frame_00 copy.tif", sample, 1, 1)
    store.finish_duplicate(db, store.claim_next(db), first_sha, 1)
    add_quarantined(db, f"{sample}/overview.emi", sample, "not an image: .ser data file missing beside the .emi")
    add_done(db, "other sample/1.tif", "other sample", particles(400, 0.2, 2.5), 0.2)
    report.write_sample_report(db, "other sample", reports)
    page = report.write_sample_report(db, sample, reports)
    index = report.write_index(db, reports)
    yield {"page": page, "index": index, "root": root, "db": db}
    db.close()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="chromium is not installed (apt-get install -y chromium); CI always has it")
def test_browser_renders_page_offline_without_console_errors(rendered, tmp_path):
    page = rendered["page"]
    png = tmp_path / "sample.png"
    log = screenshot(page.as_uri(), png, tmp_path / "profile")
    assert png.is_file() and png.stat().st_size > 20_000
    img = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (1600, 1200)
    assert img.std() > 20, "blank screenshot"
    b, g, r = (img[..., c].astype(int) for c in range(3))
    histogram_bars = (abs(r - 0x4a) < 12) & (abs(g - 0x78) < 12) & (abs(b - 0xa8) < 12)
    assert histogram_bars.sum() > 2000, "the histogram did not render"
    fit = (abs(r - 0xd9) < 25) & (abs(g - 0x71) < 25) & (abs(b - 0x1c) < 25)
    assert fit.sum() > 200, "the fitted curve did not render"
    outlines = (r > 150) & (r - b > 100) & (g > 0.65 * r) & (g < 0.95 * r)  # amber, not the fit's orange
    assert outlines.sum() > 200, "no thumbnail with outlines visible"
    assert console_errors(log, page) == []
    if os.environ.get("PSDWATCH_SCREENSHOTS"):
        shutil.copy(png, Path(os.environ["PSDWATCH_SCREENSHOTS"]) / "sample.png")
    # the index too
    png = tmp_path / "index.png"
    log = screenshot(rendered["index"].as_uri(), png, tmp_path / "profile", height=700)
    assert cv2.imread(str(png)).std() > 10 and console_errors(log, rendered["index"]) == []
    if os.environ.get("PSDWATCH_SCREENSHOTS"):
        shutil.copy(png, Path(os.environ["PSDWATCH_SCREENSHOTS"]) / "index.png")


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="chromium is not installed (apt-get install -y chromium); CI always has it")
def test_console_check_would_catch_errors(tmp_path):
    """The console check is not vacuous: a page with a script error and a
    missing image is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><img src='missing.png'>"
                   "<script>undefinedFunction()</script></body></html>")
    log = screenshot(bad.as_uri(), tmp_path / "bad.png", tmp_path / "profile", height=300)
    assert console_errors(log, bad), log[-1500:]


@pytest.mark.parametrize("diameters", [
    [3.0], [3.0, 3.0], [2.0] * 50, [1.0, 1.1, 1.2, 0.9, 250.0] * 20,
    list(np.exp(np.random.default_rng(7).normal(0.0, 1.2, 3000))),  # very wide
    list(np.linspace(40.0, 41.0, 200)),                               # narrow, far from 0
])
def test_any_distribution_renders_well_formed_plots(db, tmp_path, diameters):
    parts = particles(len(diameters), 0.5)
    for p, d in zip(parts, diameters):
        p["ecd_nm"], p["ecd_px"] = d, d / 0.5
    add_done(db, "E/1.tif", "E", parts, 0.5)
    doc = parse(report.write_sample_report(db, "E", tmp_path / "r"))
    assert doc.errors == [] and int(doc.ids["n"]) == len(diameters)
    html = (tmp_path / "r" / report.sample_page_name("E")).read_text()
    assert not re.search(r"\b(nan|inf)\b", html, re.I)
    bars = [float(h) for h in re.findall(r'<rect class="bar" x="[^"]*" y="[^"]*" width="[^"]*" height="([^"]*)"', html)]
    assert max(bars) > 100  # the tallest bar is not flattened by the fitted curve
    for path in re.findall(r' d="([^"]*)"', html):
        coords = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path)]
        assert all(-1 <= v <= 600 for v in coords), path  # inside the 560 x 330 viewBox


def test_a_file_deleted_from_the_share_keeps_its_result_and_is_marked(db, tmp_path):
    share = tmp_path / "share"
    (share / "s").mkdir(parents=True)
    for name in ("a.tif", "b.tif"):
        (share / "s" / name).write_bytes(b"measured")
        add_done(db, f"s/{name}", "s", particles(30, 0.2, seed=len(name)), 0.2)
    (share / "s" / "a.tif").unlink()
    scan = MissingScan(share, every_s=0.0)  # by folder listing, in slices, as the report thread runs it
    assert scan.step(db) == {"s"}
    assert scan.step(db) == set()  # marked once
    page = parse(report.write_sample_report(db, "s", tmp_path / "reports"))
    text = " ".join(page.text)
    assert "deleted from the share" in text and "1 file measured here has since been deleted" in text
    assert int(page.ids["n"]) == 60  # both images' particles are still in the PSD
    (share / "s" / "a.tif").write_bytes(b"back")
    assert scan.step(db) == {"s"}
    assert "deleted from the share" not in " ".join(parse(report.write_sample_report(db, "s", tmp_path / "r2")).text)


def test_the_index_shows_samples_side_by_side(db, tmp_path):
    reports = tmp_path / "reports"
    for k, median in enumerate((2.0, 3.0, 5.0)):
        add_done(db, f"batch{k}/a.tif", f"batch{k}", particles(200, 0.2, median, seed=k), 0.2)
        report.write_sample_report(db, f"batch{k}", reports)
    add_done(db, "noscale/a.tif", "noscale", particles(50, None, seed=9), None)
    report.write_sample_report(db, "noscale", reports)
    html = report.write_index(db, reports).read_text()
    doc = parse(reports / "index.html")
    assert doc.errors == [] and "side-by-side" in doc.ids
    dots = re.findall(r'<circle class="dot" cx="([\d.]+)"', html)
    assert len(dots) == 3  # the sample without a scale has no nm d50
    labels = re.findall(r'<title>(batch\d): d50 ([\d.]+) nm', html)
    xs = dict(zip([name for name, _ in labels], map(float, dots)))
    assert xs["batch0"] < xs["batch1"] < xs["batch2"]  # positions follow d50


def test_the_index_overlays_the_cumulative_psds_of_the_most_recent_samples(db, tmp_path):
    reports = tmp_path / "reports"
    medians = (2.0, 3.0, 5.0, 4.0)
    for k, median in enumerate(medians):
        add_done(db, f"batch{k}/a.tif", f"batch{k}", particles(300, 0.2, median, seed=k), 0.2)
        report.write_sample_report(db, f"batch{k}", reports)
    add_done(db, "noscale/a.tif", "noscale", particles(50, None, seed=9), None)
    report.write_sample_report(db, "noscale", reports)
    html = report.write_index(db, reports, compare=3).read_text()
    doc = parse(reports / "index.html")
    assert doc.errors == [] and "psd-overlay" in doc.ids
    curves = re.findall(r'<path class="overlay" style="stroke: (#[0-9a-f]{6})" d="M([^"]+)"><title>(batch\d): '
                        r'cumulative PSD, d50 ([\d.]+) nm', html)
    # The three most recent samples with a scale, each its own colour; the oldest is left out and said so.
    assert [name for *_, name, _ in curves] == ["batch3", "batch2", "batch1"]
    assert len({colour for colour, *_ in curves}) == 3
    assert "1 older not drawn" in " ".join(doc.text)

    def x_at_half(path: str) -> float:  # where the curve crosses 50 %
        points = [tuple(map(float, pt.split(","))) for pt in path.replace("L", "").split()]
        ys = [y for _, y in points]
        middle = (max(ys) + min(ys)) / 2
        return min(points, key=lambda pt: abs(pt[1] - middle))[0]

    x = {name: x_at_half(path) for _, path, name, _ in curves}
    assert x["batch1"] < x["batch3"] < x["batch2"]  # medians 3 < 4 < 5 nm: the curves in that order
    # An index cache written before the quantiles existed still renders (no overlay for those samples).
    db.execute("UPDATE sample_summaries SET quantiles = NULL")
    html = report.write_index(db, reports).read_text()
    assert 'class="overlay"' not in html and 'class="dot"' in html


def test_an_index_cache_from_before_the_overlay_is_upgraded(db, tmp_path):
    reports = tmp_path / "reports"
    db.execute("CREATE TABLE sample_summaries (sample TEXT PRIMARY KEY, page TEXT, unit TEXT, n INTEGER, "
               "d10 REAL, d50 REAL, d90 REAL, d50_lo REAL, d50_hi REAL, mean REAL, std REAL, "
               "lognormal_median REAL, lognormal_sigma_g REAL, n_px INTEGER, images_done INTEGER, as_of TEXT, "
               "generated_at TEXT)")
    add_done(db, "old/a.tif", "old", particles(100, 0.2, seed=3), 0.2)
    assert 'class="overlay"' not in report.write_index(db, reports).read_text()  # the old cache reads
    report.write_sample_report(db, "old", reports)  # adds the column
    assert 'class="overlay"' in report.write_index(db, reports).read_text()
