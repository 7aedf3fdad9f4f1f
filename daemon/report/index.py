"""Reports: per sample an HTML page and a CSV, an index of samples, thumbnails.

Everything here is read back from the store alone. The share is read once, at
processing time, and the only thing kept from the pixels is a thumbnail with the
measured outlines (`write_thumbnail`), so regenerating a report never touches a
network share that may be slow or gone.

The pages are opened straight from a file share, by people without a server and
often offline: no JavaScript, no CDN, no web fonts. Plots are inline SVG drawn
here (geometry in Python, markup in the templates), and every value coming from
a file or sample name goes through jinja2's autoescaping.

The parts live beside this module, one job each: the store reads (queries), file
names (names), thumbnails, the SVG plots, the CSV (particles_csv, kept up to date
by sample_csv), a sample's page (sample_page, from the kept numbers of
sample_stats), drawing them beside the measuring (report_scheduler); the
statistics are pipeline.psd's and every file goes through
pipeline.files.write_atomic, so a person refreshing a page never sees half of it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ...pipeline.io.files import sweep_temporaries, write_atomic
from ...pipeline.measure.psd import summarise_sample as summarise  # noqa: F401
from .names import THUMBS, sample_csv_name, sample_page_name, sample_slug, thumbnail_name, thumbnail_path, view_name  # noqa: F401
from .page_render import FLAG_TEXT, QUESTIONABLE_SCALE, TEMPLATES_DIR, _count, _flag_items, _json, _local_time, _natural_key, _now_context, _strip, render, templates_dir  # noqa: F401
from .particles_csv import CSV_COLUMNS, write_csv  # noqa: F401
from .plots import d50_dotplot, format_number, overlay_plot  # noqa: F401
from ..store.core import models_by_sample
from .sample_page import PAGE_IMAGES, write_sample_report  # noqa: F401
from ..store.sample_stats import totals as store_totals
from ..store.queries import PARTICLE_FIELDS, SUMMARY_TABLE, index_rows, queue_counts, save_summary  # noqa: F401
from .thumbnails import encode_thumbnail, write_thumbnail  # noqa: F401

log = logging.getLogger("psdwatch.report")

# --------------------------------------------------------------------------- index

def stale_samples(db, reports_dir: Path) -> list[str]:
    """Samples whose page is missing or older than their newest image: what
    write_index marks "updating", e.g. after a writer was killed between
    storing an image and writing its report."""
    reports_dir = Path(reports_dir)
    samples = index_rows(db)
    return [s["sample"] for s in samples
            if s["page"] is None or s["as_of"] != s["last_update"] or s["summary_done"] != (s["done"] or 0)
            or not (reports_dir / s["page"]).is_file()]


INDEX_SAMPLES = 1000        # samples on index.html; older ones on index-2.html, index-3.html, ...
OLDER_INDEX_EVERY_S = 600.0  # how often those older pages are redrawn (their samples did not change lately)
_older_written: dict[str, float] = {}


def _index_samples(db, reports_dir: Path, min_particles: int, limit: int, offset: int) -> list[dict]:
    samples = index_rows(db, limit, offset)
    mixed_samples = [s["sample"] for s in samples if (s["models"] or 0) > 1]
    mixed = models_by_sample(db, mixed_samples) if mixed_samples else {}
    for s in samples:
        for key in ("done", "quarantined", "duplicate", "skipped"):
            s[key] = s[key] or 0
        s["stale"] = s["page"] is None or s["as_of"] != s["last_update"] or s["summary_done"] != s["done"]
        s["page"] = s["page"] if s["page"] and (reports_dir / s["page"]).is_file() else None
        s["updated"] = _local_time(s["last_update"])
        s["few"] = s["n"] is not None and 0 < s["n"] < min_particles
        s["quantiles"] = _json(s["quantiles"], None)
        s["mixed"] = ", ".join(f"{m} ({_count(k, 'image', 'images')})" for m, k in mixed.get(s["sample"], {}).items())
    return samples


def index_page_name(page: int) -> str:
    return "index.html" if page == 1 else f"index-{page}.html"


def write_index(db, reports_dir: Path, *, min_particles: int = 100, compare: int = 12,
                per_page: int = INDEX_SAMPLES, older_every_s: float = OLDER_INDEX_EVERY_S) -> Path:
    """Regenerate reports_dir/index.html: the `per_page` most recently updated
    samples with n, d50 and their last update, linking their pages, and the
    store's totals; then the samples side by side: the cumulative PSDs of the
    `compare` most recent samples overlaid ([reports] compare_samples; 0 = none),
    and their d50 with its 95 % interval as a dot plot. Older samples are listed
    on index-2.html, ... (redrawn at most every `older_every_s`, or when their
    number changes: they are the samples that did not change lately).

    From the kept per-sample counts and cached summaries (sample_stats): the cost
    of the samples listed, not of the images; a sample whose page is older than
    its newest image is marked "updating".
    """
    reports_dir = Path(reports_dir)
    queue, kept = queue_counts(db), store_totals(db)
    totals = {"queued": queue.get("queued", 0), "processing": queue.get("processing", 0),
              **{k: kept[k] for k in ("done", "quarantined", "duplicate", "skipped", "samples")}}
    pages = max(1, -(-totals["samples"] // per_page))
    key = f"{reports_dir.resolve()}:{pages}"
    redraw_older = time.monotonic() - _older_written.get(key, -1e18) >= older_every_s
    path = reports_dir / "index.html"
    for page in range(1, pages + 1 if redraw_older else 2):
        samples = _index_samples(db, reports_dir, min_particles, per_page, (page - 1) * per_page)
        first = page == 1
        html = render("index.html", samples=samples, totals=totals, min_particles=min_particles,
                      dotplot=d50_dotplot(samples) if first else None,
                      overlay=overlay_plot(samples, compare) if compare and first else None,
                      paging={"page": page, "pages": [index_page_name(k) for k in range(1, pages + 1)],
                              "first": (page - 1) * per_page + 1, "last": (page - 1) * per_page + len(samples)},
                      **_now_context())
        write_atomic(reports_dir / index_page_name(page), html)
    if redraw_older:
        _older_written[key] = time.monotonic()
    sweep_temporaries(reports_dir)
    return path

