"""What a person meets on the report pages: the full-resolution view as a page of
its own (file name, legend, the way back), long flags that stay inside the
table, whole numbers of particles on the histogram's axis, sentences that agree
with their count, and the index's particle count of samples measured in px only.
Real images through the real pipeline into a real store; a real Chromium for
the layout."""

from __future__ import annotations

import hashlib
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from psdwatch.daemon import report
from psdwatch.daemon import store
from psdwatch.daemon.report.plots import histogram_plot, nice_ticks
from psdwatch.pipeline.measure import psd
from psdwatch.pipeline import synth
from psdwatch.pipeline.analyse import Settings, analyse_image, analysis_record

from .conftest import DATA
from .test_report import CHROMIUM, console_errors, screenshot

SAMPLE = "Pt/Al₂O₃ 450 °C"
PX_ONLY = "patches without scale"


class Links(HTMLParser):
    """Hrefs, image sources, the h1 and the text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs, self.srcs, self.text, self.h1, self._in_h1 = [], [], [], "", False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.srcs.append(attrs["src"])
        self._in_h1 = tag == "h1" or self._in_h1

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_h1:
            self.h1 += data


def links(page: Path) -> Links:
    parsed = Links()
    parsed.feed(page.read_text(encoding="utf-8"))
    parsed.close()
    return parsed


def store_analysis(db, reports: Path, relpath: str, sample: str, path: Path, analysis, flags=()) -> None:
    """As the service does: thumbnail and view first, then the row."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    report.write_thumbnail(analysis, report.thumbnail_path(reports, sha))
    report.write_thumbnail(analysis, reports / report.view_name(sha), max_px=2048)
    record = analysis_record(analysis, sample)
    record["flags"] = list(record["flags"]) + list(flags)
    store.enqueue(db, relpath, sample, 1, 1)
    store.finish_done(db, store.claim_next(db), sha, record)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two synthetic frames with a scale bar in SAMPLE (one flagged unsure, as the
    blob survey flags real catalyst frames), one real patch without scale beside
    them, and a sample of two real patches only: pages and index written."""
    root = tmp_path_factory.mktemp("pages")
    reports, db = root / "reports", store.open_store(root / "state" / "psdwatch.sqlite")
    settings = Settings(engine="classical", bootstrap=200)
    for i, seed in enumerate((3, 11)):
        path = synth.write_example(root / "share", f"frame_{i:02d}",
                                   *synth.synth_image(synth.SynthSpec(size=640, seed=seed)))
        store_analysis(db, reports, f"{SAMPLE}/{path.name}", SAMPLE, path, analyse_image(path, settings),
                       flags=["segmentation_unsure", "scale_from_config"] if i else [])
    patches = sorted((DATA / "pt-alumina-haadf").glob("ptal_0[0-9][0-9].tif"))
    store_analysis(db, reports, f"{SAMPLE}/{patches[0].name}", SAMPLE, patches[0], analyse_image(patches[0], settings))
    for patch in patches[1:3]:
        store_analysis(db, reports, f"{PX_ONLY}/{patch.name}", PX_ONLY, patch, analyse_image(patch, settings))
    pages = {s: report.write_sample_report(db, s, reports) for s in (SAMPLE, PX_ONLY)}
    index = report.write_index(db, reports)
    yield {"reports": reports, "pages": pages, "index": index, "db": db}
    db.close()


def test_a_thumbnail_opens_a_view_page_with_the_file_name_the_legend_and_a_way_back(site):
    page = site["pages"][SAMPLE]
    views = [h for h in links(page).hrefs if h.startswith("views/")]
    assert len(views) == 3 and all(h.endswith(".html") for h in views)
    view = site["reports"] / views[0]
    parsed = links(view)
    assert parsed.h1 == "frame_00.tif"
    text = " ".join(" ".join(parsed.text).split())
    assert f"sample {SAMPLE}" in text and f"{SAMPLE}/frame_00.tif" in text
    assert "amber: measured particles" in text and "blue: segmented but not measured" in text
    assert [(view.parent / src).is_file() for src in parsed.srcs] == [True]
    assert f"../{page.name}#images" in parsed.hrefs and "../index.html" in parsed.hrefs
    assert all((view.parent / h.split("#")[0]).resolve().is_file() for h in parsed.hrefs)
    mtime = view.stat().st_mtime_ns
    report.write_sample_report(site["db"], SAMPLE, site["reports"])  # written once, not at every rebuild
    assert view.stat().st_mtime_ns == mtime


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_view_page_renders_its_frame_without_console_errors(site, tmp_path):
    view = site["reports"] / next(h for h in links(site["pages"][SAMPLE]).hrefs if h.startswith("views/"))
    log = screenshot(view.as_uri(), tmp_path / "view.png", tmp_path / "profile", height=900)
    assert console_errors(log, view) == []


LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const out = [];
  for (const badge of document.querySelectorAll("td .badge")) {
    const table = badge.closest("table").getBoundingClientRect(), box = badge.getBoundingClientRect();
    const cell = badge.closest("td").getBoundingClientRect();
    if (box.right > cell.right + 0.5 || box.right > table.right + 0.5) out.push(badge.textContent);
  }
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth) out.push("page scrolls sideways");
  document.body.setAttribute("data-overflow", JSON.stringify(out));
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1200, 900])
def test_long_flags_stay_inside_the_image_table(site, tmp_path, width):
    """A copy of the page with a probe that measures the laid-out badges (the
    pages themselves carry no scripts)."""
    page = site["pages"][SAMPLE]
    probe = page.with_name(f"probe-{width}.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    try:
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},900",
                               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
                               "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    found = re.search(r'data-overflow="([^"]*)"', done.stdout)
    assert found, done.stderr[-1500:]
    assert "segmentation unsure" in page.read_text(encoding="utf-8")
    assert found.group(1).replace("&quot;", '"') == "[]"


def test_the_histogram_counts_particles_in_whole_numbers(site):
    rows = site["db"].execute("SELECT ecd_nm FROM particles WHERE ecd_nm IS NOT NULL").fetchall()
    measured = np.array([r[0] for r in rows])
    for d in (measured, measured[:12], measured[:3]):
        plot = histogram_plot(d, psd.summarise(list(d), bootstrap=0), "nm")
        labels = [t["label"] for t in plot["yticks"]]
        assert labels and all(re.fullmatch(r"\d+", label) for label in labels), labels
    for top in np.linspace(0.5, 60, 240):  # every height of tallest bar, not only these samples'
        ticks, step = nice_ticks(0, top, 5, integer=True)
        assert step >= 1 and all(float(t).is_integer() for t in ticks), (top, ticks)


def test_sentences_agree_with_their_count_and_say_how_to_add_the_scale(site):
    one = " ".join(" ".join(links(site["pages"][SAMPLE]).text).split())
    n_px = site["db"].execute("SELECT COUNT(*) FROM particles p JOIN images i ON i.id = p.image_id "
                              "WHERE i.sample = ? AND i.nm_per_px IS NULL", [SAMPLE]).fetchone()[0]
    assert f"1 image has no scale: its {n_px} particles are measured in pixels only" in one
    assert "this image was measured in pixels only and is not part of the PSD above" in one
    assert f"psdwatch reprocess {SAMPLE} --changed-config" in one
    two = " ".join(" ".join(links(site["pages"][PX_ONLY]).text).split())
    assert "2 images have no scale: their" in two
    assert "these 2 images were measured in pixels only and are not part" in two


def test_the_index_counts_the_particles_of_a_sample_measured_in_px_only(site):
    n_px = site["db"].execute("SELECT COUNT(*) FROM particles p JOIN images i ON i.id = p.image_id "
                              "WHERE i.sample = ?", [PX_ONLY]).fetchone()[0]
    assert n_px > 0
    html = site["index"].read_text(encoding="utf-8")
    row = next(r for r in html.split("<tr>") if PX_ONLY in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    particles = " ".join(re.sub(r"<[^>]+>", " ", cells[2]).split())
    assert particles == f"{n_px} in px"
