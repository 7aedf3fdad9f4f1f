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

import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from functools import lru_cache, partial
from pathlib import Path

import jinja2

from ..pipeline import __version__ as SOFTWARE_VERSION
from ..pipeline.files import sweep_temporaries, write_atomic
from ..pipeline.psd import summarise_sample as summarise  # noqa: F401
from .names import (THUMBS, sample_csv_name, sample_page_name, sample_slug, thumbnail_name,  # noqa: F401
                    thumbnail_path, view_name)
from .particles_csv import CSV_COLUMNS, write_csv  # noqa: F401
from .plots import d50_dotplot, format_number, overlay_plot
from .store import models_by_sample
from .sample_stats import totals as store_totals
from .queries import PARTICLE_FIELDS, SUMMARY_TABLE, index_rows, queue_counts, save_summary  # noqa: F401
from .thumbnails import encode_thumbnail, write_thumbnail  # noqa: F401

log = logging.getLogger("psdwatch.report")

# templates/ sits beside daemon/ at the top of the project (DESIGN's layout);
# PSDWATCH_TEMPLATES points elsewhere, e.g. for an installed wheel.
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

# Flags of an image, what they mean for a person, and how bad they are.
# "bad": the sizes of that image are not in the nm PSD; "warn": they are, but
# questionable; "info": worth knowing. Unknown flags are shown as they are.
FLAG_TEXT: dict[str, tuple[str, str]] = {
    "scale_unknown": ("bad", "no scale: sizes in px, kept out of the nm PSD"),
    "scale_disputed": ("warn", "scale disputed: file calibration and scale bar disagree"),
    "scale_from_config": ("warn", "scale assumed from the configured fallback, not read from the image"),
    "calibration_from_tiff_resolution": ("warn", "scale from the TIFF resolution tag (plausible, not certain)"),
    "titan_xml_unit_assumed": ("warn", "pixel size unit assumed (not written in the file)"),
    "non_square_pixels": ("warn", "non-square pixels: the mean pixel size was used"),
    "mixed_units": ("warn", "x and y calibrated in different units"),
    "scale_bar_unsure": ("info", "scale bar not read with confidence"),
    # Expected per image (the sample pools them); the sample-level warning is the one that matters.
    "few_particles": ("plain", "few particles in this image"),
    "no_particles": ("warn", "no particles found"),
    "segmentation_unsure": ("warn", "segmentation unsure: bright compact blobs in the frame were not segmented"),
    "large_exclusion": ("warn", "a large part of the frame was kept out of segmentation (scale bar region)"),
    "bright_field": ("info", "bright-field image: not measured (psdwatch measures HAADF)"),
    "lossy_jpeg": ("info", "JPEG file: compression artefacts"),
    "calibration_not_a_length": ("info", "file calibration is not a length (ignored)"),
    "calibration_invalid": ("info", "file calibration invalid (ignored)"),
    "calibration_metadata_unreadable": ("info", "calibration metadata unreadable"),
    "tiff_resolution_ignored": ("info", "implausible TIFF resolution ignored"),
    "titan_xml_unparsable": ("info", "FEI/Titan metadata unreadable"),
    "titan_xml_unitless_pixel_size": ("info", "FEI/Titan pixel size without unit (ignored)"),
    "databar_detected": ("info", "databar below the image cut off"),
    "rgb_converted": ("info", "colour file converted to grey"),
    "alpha_dropped": ("info", "alpha channel dropped"),
    "inverted_miniswhite": ("info", "inverted (MINISWHITE) TIFF"),
    "multipage_picked_raw": ("info", "multi-page file: the raw page was used"),
    "non_finite_values": ("info", "image contains non-finite values"),
}
# In the nm PSD, but a person must know the sizes may be off.
QUESTIONABLE_SCALE = frozenset(f for f, (level, _) in FLAG_TEXT.items()
                               if level == "warn" and f not in ("no_particles", "segmentation_unsure",
                                                                "large_exclusion"))

# --------------------------------------------------------------------------- templates

def templates_dir() -> Path:
    """The templates folder: $PSDWATCH_TEMPLATES, else templates/ beside daemon/."""
    return Path(os.environ.get("PSDWATCH_TEMPLATES") or TEMPLATES_DIR)


@lru_cache(maxsize=4)
def _environment(folder: str) -> jinja2.Environment:
    if not Path(folder, "sample.html").is_file():
        raise FileNotFoundError(f"report templates not found in {folder} "
                                "(set PSDWATCH_TEMPLATES to the templates/ folder)")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    return env


def render(template: str, **context) -> str:
    return _environment(str(templates_dir())).get_template(template).render(
        software_version=SOFTWARE_VERSION, **context)


# --------------------------------------------------------------------------- helpers

def _natural_key(text: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text)]


def _json(text: str | None, default):
    try:
        return json.loads(text) if text else default
    except (TypeError, ValueError):
        return default


def _local_time(iso: str | None) -> str:
    """Stored times are UTC ISO 8601; people read the lab's local time."""
    if not iso:
        return "\u2014"
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def _now_context() -> dict:
    """When the page was made, and the local zone its times are in."""
    now_local = datetime.now().astimezone()
    offset = now_local.strftime("%z")
    zone = f"UTC{offset[:3]}:{offset[3:]}"
    name = now_local.tzname() or ""
    return {"generated": now_local.strftime("%Y-%m-%d %H:%M"),
            "tz": zone if name in ("", "UTC") or name.startswith(("+", "-")) else f"{name}, {zone}"}


def _strip(path: str, prefix: str) -> str:
    return path[len(prefix):] if path.startswith(prefix) else path


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _flag_items(flags: list[str], details: dict) -> list[dict]:
    items = []
    for flag in flags:
        level, text = FLAG_TEXT.get(flag, ("info", flag.replace("_", " ")))
        if flag == "scale_disputed" and details.get("disagreement_pct") is not None:
            text += f" by {details['disagreement_pct']:g} %"
        items.append({"flag": flag, "level": level, "text": text})
    return items


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


def write_reports(db, reports_dir: Path, samples: list[str] | None = None, **psd_settings) -> Path:
    """`psdwatch report`: rebuild the pages of `samples` (all when None), then
    the index. Returns the index path."""
    from .report_scheduler import rebuild_due

    rebuild_due(db, reports_dir, samples=samples, everything=samples is None, **psd_settings)
    return Path(reports_dir) / "index.html"


# The sample page lives in its own module (it reads this one's helpers at call time).
from .sample_page import PAGE_IMAGES, write_sample_report  # noqa: E402, F401
