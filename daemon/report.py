"""Reports: per sample an HTML page and a CSV, an index of samples, thumbnails.

Everything here is read back from the store alone. The share is read once, at
processing time, and the only thing kept from the pixels is a thumbnail with the
measured outlines (`write_thumbnail`), so regenerating a report never touches a
network share that may be slow or gone.

The pages are opened straight from a file share, by people without a server and
often offline: no JavaScript, no CDN, no web fonts. Plots are inline SVG drawn
here (geometry in Python, markup in the templates), and every value coming from
a file or sample name goes through jinja2's autoescaping.

Costs, because the service regenerates a page after every image for months:
- a sample page reads that sample's rows through the (sample, status) index of
  `images` and the image_id index of `particles`, so it costs the same whether
  the store holds 10 samples or 1000;
- its numbers are cached in `sample_summaries` (one row per sample), so that the
  index page is one aggregate query over `images` joined to that cache, instead
  of re-reading every particle of the lab.
Every file is written to a temporary name beside it and renamed over the old one
(os.replace), so a person refreshing a page never sees half of it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import sqlite3
import tempfile
import time
import unicodedata
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import cv2
import jinja2
import numpy as np

from ..pipeline import __version__ as SOFTWARE_VERSION
from ..pipeline import psd

log = logging.getLogger("psdwatch.report")

# templates/ sits beside daemon/ at the top of the project (DESIGN's layout);
# PSDWATCH_TEMPLATES points elsewhere, e.g. for an installed wheel.
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
THUMBS = "thumbs"

# Bootstrapping the d50 interval costs bootstrap x n draws; above this many the
# distribution-free order-statistic interval is used, which at such n agrees
# with the bootstrap and costs one sort, not hundreds of MB.
MAX_BOOTSTRAP_DRAWS = 4_000_000

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

# CSV: Fiji's "Results" column names, so people can reuse their macros and habits.
CSV_COLUMNS = [" ", "Label", "Particle", "Area", "Perim.", "X", "Y", "Feret", "MinFeret",
               "Circ.", "Solidity", "Mean", "ECD", "Unit", "ScaleSource"]
# (store column in nm, store column in px, power of the length unit, decimals)
_CSV_MEASURES = [("area_nm2", "area_px", 2, 3), ("perimeter_nm", "perimeter_px", 1, 3),
                 (None, "x", 1, 3), (None, "y", 1, 3),
                 ("feret_max_nm", "feret_max_px", 1, 3), ("feret_min_nm", "feret_min_px", 1, 3)]

SUMMARY_TABLE = "sample_summaries"
SUMMARY_COLUMNS = ("sample", "page", "unit", "n", "d10", "d50", "d90", "d50_lo", "d50_hi",
                   "mean", "std", "lognormal_median", "lognormal_sigma_g", "n_px",
                   "images_done", "as_of", "generated_at")


# --------------------------------------------------------------------------- files

def write_atomic(path: Path, data: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write `data` to `path` so that readers see the old file or the new one,
    never a half-written one: a temporary file in the same folder (same file
    system, so the rename is atomic), then os.replace. `data` may be a function
    that writes into the open binary file, to stream large files (a CSV of
    10^5 particles) instead of building them in memory. The temporary file is
    made world-readable: mkstemp's 0600 would lock colleagues out of a share."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:60]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def sample_slug(sample: str) -> str:
    """A file name stem for a sample that is safe on any file system and share.

    The readable part keeps ASCII letters and digits (accents folded, the rest
    turned into '-'); a hash of the exact name is appended so that samples that
    fold to the same text ("Pt/Al2O3" and "Pt Al2O3", "a" and "A" on a
    case-insensitive SMB share, NFC and NFD spellings) never share a file.
    """
    folded = unicodedata.normalize("NFKD", sample).encode("ascii", "ignore").decode("ascii")
    readable = re.sub(r"[^A-Za-z0-9]+", "-", folded).strip("-")[:48].strip("-") or "sample"
    digest = hashlib.sha256(sample.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{readable}-{digest}"


def sample_page_name(sample: str) -> str:
    return f"{sample_slug(sample)}.html"


def sample_csv_name(sample: str) -> str:
    return f"{sample_slug(sample)}.csv"


def thumbnail_name(sha256: str) -> str:
    """Thumbnails are named by content: a duplicate, or a promoted duplicate
    that inherits the particles of the same bytes, shows the same picture, and
    the worker can write it before the image's row exists."""
    return f"{THUMBS}/{sha256[:24]}.png"


def thumbnail_path(reports_dir: Path, sha256: str) -> Path:
    """Where the worker writes the thumbnail of an image with this content."""
    return Path(reports_dir) / thumbnail_name(sha256)


# --------------------------------------------------------------------------- thumbnail

def _outline(img: np.ndarray, region: np.ndarray, scale: float, colour: tuple[int, int, int]) -> int:
    """Draw the outlines of `region` (full-resolution boolean) onto the scaled
    image. Contours are found at full resolution and their points scaled, so
    small particles keep an outline instead of vanishing in the downscale."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    shift = 4  # sub-pixel coordinates: 1/16 px
    polys = [np.round(((c[:, 0, :] + 0.5) * scale - 0.5) * (1 << shift)).astype(np.int32)
             for c in contours]
    if polys:
        cv2.polylines(img, polys, True, colour, 1, cv2.LINE_AA, shift)
    return len(polys)


MEASURED_BGR = (0, 200, 255)   # amber: readable on black support and white metal
EXCLUDED_BGR = (235, 140, 60)  # blue: segmented but not measured (border, scale bar)


def write_thumbnail(analysis, path: Path, max_px: int = 512) -> Path:
    """A PNG of the image with the measured particles outlined, at most max_px
    on its long side, for the sample page.

    Called once per image by the worker while the pixels are in memory, so the
    report never re-reads the share. Contrast is stretched between robust
    percentiles (0.5 and 99.5 %) so that a few hot pixels or a black databar do
    not wash the picture out. Measured particles (analysis.labels > 0) are
    outlined in amber; segmented regions that were *not* measured (touching the
    border or the scale bar) in blue, so a person sees what was left out too.
    """
    data = np.asarray(analysis.data, dtype=np.float32)
    h, w = data.shape[:2]
    scale = min(1.0, max_px / max(h, w))
    step = max(1, max(h, w) // 1024)  # percentiles of ~1 Mpx are as good and 4x cheaper
    probe = data[::step, ::step]
    probe = probe[np.isfinite(probe)]
    lo, hi = (np.percentile(probe, (0.5, 99.5)) if probe.size else (0.0, 1.0))
    if not hi > lo:
        hi = lo + 1.0
    data = np.nan_to_num(data, nan=lo, posinf=hi, neginf=lo)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        data = cv2.resize(data, size, interpolation=cv2.INTER_AREA)
    grey = np.clip((data - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    labels = np.asarray(analysis.labels)
    measured = labels > 0
    if analysis.mask is not None:
        _outline(img, np.asarray(analysis.mask, bool) & ~measured, scale, EXCLUDED_BGR)
    _outline(img, measured, scale, MEASURED_BGR)
    ok, png = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError(f"could not encode the thumbnail for {analysis.image}")
    return write_atomic(Path(path), png.tobytes())


# --------------------------------------------------------------------------- numbers

def format_number(value: float | None, unit: str | None = None) -> str:
    """Three significant figures, never in exponent notation (a microscopist
    reads "0.812 nm", "3.46 nm", "128 nm"); an em dash for a missing value."""
    if value is None or not math.isfinite(value):
        return "\u2014"
    a = abs(value)
    if a >= 100:
        text = f"{value:.0f}"
    elif a >= 10:
        text = f"{value:.1f}"
    elif a >= 1:
        text = f"{value:.2f}"
    elif a == 0:
        text = "0"
    else:
        text = f"{value:.{max(2, 2 - math.floor(math.log10(a)))}f}"
    return f"{text} {unit}" if unit else text


def summarise(diameters: np.ndarray, unit: str, bootstrap: int = 1000) -> dict:
    """pipeline.psd.summarise, the same numbers `psdwatch process` prints, with
    the d50 interval taken from order statistics when a bootstrap would need
    more than MAX_BOOTSTRAP_DRAWS draws (10^5 particles x 1000 resamples is
    800 MB). `ci_method` says which one the page shows."""
    d = np.asarray(diameters, float)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size * bootstrap <= MAX_BOOTSTRAP_DRAWS:
        out = psd.summarise(d, unit, bootstrap)
        out["ci_method"] = f"bootstrap, {bootstrap} resamples" if out["d50_ci95"] else None
        return out
    out = psd.summarise(d, unit, bootstrap=0)
    s = np.sort(d)
    n = s.size
    half = 1.959964 * math.sqrt(n) / 2  # binomial(n, 1/2) ranks around the median
    lo_rank, hi_rank = max(1, math.floor(n / 2 - half)), min(n, math.ceil(n / 2 + half) + 1)
    out["d50_ci95"] = [float(s[lo_rank - 1]), float(s[hi_rank - 1])]
    out["ci_method"] = "order statistics (distribution-free)"
    return out


def _lognormal_cdf(x: np.ndarray, median: float, sigma_g: float) -> np.ndarray:
    s = math.log(sigma_g) if sigma_g > 1 else 1e-6
    z = np.log(np.maximum(x, 1e-300) / median) / (s * math.sqrt(2))
    return 0.5 * (1 + np.vectorize(math.erf)(z))


# --------------------------------------------------------------------------- plots

PLOT_W, PLOT_H = 560, 330
MARGIN = {"left": 58, "right": 16, "top": 16, "bottom": 48}


def nice_ticks(lo: float, hi: float, target: int = 6) -> tuple[list[float], float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k) covering [lo, hi]."""
    span = hi - lo if hi > lo else (abs(hi) or 1.0)
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, k = [], 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks, step


def _nice_step(raw: float) -> float:
    """The 1, 2, 2.5 or 5 x 10^k nearest to raw (in ratio): bin widths people can read."""
    mag = 10 ** math.floor(math.log10(raw))
    return min((m * mag for m in (1, 2, 2.5, 5, 10)), key=lambda v: abs(math.log(v / raw)))


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / 10 ** math.floor(math.log10(step)), 3) == 2.5 else 0)
    return f"{value:.{decimals}f}"


class _Frame:
    """Maps data to SVG coordinates for one plot."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float):
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.left, self.top = MARGIN["left"], MARGIN["top"]
        self.width = PLOT_W - MARGIN["left"] - MARGIN["right"]
        self.height = PLOT_H - MARGIN["top"] - MARGIN["bottom"]

    def x(self, v):
        return self.left + (np.asarray(v, float) - self.x0) / (self.x1 - self.x0) * self.width

    def y(self, v):
        return self.top + self.height - (np.asarray(v, float) - self.y0) / (self.y1 - self.y0) * self.height

    def path(self, xs, ys) -> str:
        px, py = self.x(xs), self.y(ys)
        keep = np.isfinite(px) & np.isfinite(py)
        pts = [f"{a:.1f},{b:.1f}" for a, b in zip(px[keep], py[keep])]
        return ("M" + " L".join(pts)) if pts else ""

    def axes(self, xstep_ticks, ystep_ticks, xlabel: str, ylabel: str) -> dict:
        (xt, xs), (yt, ys) = xstep_ticks, ystep_ticks
        return {
            "w": PLOT_W, "h": PLOT_H, "left": self.left, "top": self.top,
            "right": self.left + self.width, "bottom": self.top + self.height,
            "xticks": [{"pos": round(float(self.x(t)), 1), "label": _tick_label(t, xs)}
                       for t in xt if self.x0 - 1e-9 <= t <= self.x1 + 1e-9],
            "yticks": [{"pos": round(float(self.y(t)), 1), "label": _tick_label(t, ys)}
                       for t in yt if self.y0 - 1e-9 <= t <= self.y1 + 1e-9],
            "xlabel": xlabel, "ylabel": ylabel,
        }


def _x_range(d: np.ndarray) -> tuple[float, float, int]:
    """The diameter axis: from 0, unless all particles sit far from 0 (a narrow
    distribution would be squeezed into a corner), to the largest particle,
    unless a few outliers would do the same squeezing: then to the 99.5th
    percentile, and the number of particles off scale is shown on the plot."""
    top = float(d.max())
    p995 = float(np.percentile(d, 99.5))
    if d.size >= 50 and top > 1.6 * p995:
        top = p995 * 1.08
    low = float(np.percentile(d, 0.5))
    ticks, step = nice_ticks(0.0, top)
    x0 = 0.0
    if low > 0.45 * top:
        ticks, step = nice_ticks(low * 0.95, top)
        x0 = ticks[0] - step if ticks[0] > low * 0.95 else ticks[0]
    x1 = ticks[-1] if ticks[-1] >= top else ticks[-1] + step
    return x0, x1, int((d > x1).sum() + (d < x0).sum())


def histogram_plot(d: np.ndarray, summary: dict, unit: str) -> dict | None:
    """Geometry of the histogram (number of particles per bin) with the fitted
    lognormal scaled to counts; bins by the Freedman-Diaconis rule, rounded to a
    nice width, between 8 and 60 of them over the plotted range."""
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        return None
    x0, x1, off = _x_range(d)
    q75, q25 = np.percentile(d[d <= x1], (75, 25))
    fd = 2 * (q75 - q25) / d.size ** (1 / 3)
    bins = min(60, max(8, math.ceil((x1 - x0) / fd))) if fd > 0 else 20
    width = _nice_step((x1 - x0) / bins)
    edges = np.arange(x0, x1 + width * 0.5, width)
    if edges[-1] < x1:
        edges = np.append(edges, edges[-1] + width)
    counts, _ = np.histogram(d, edges)
    x1 = float(edges[-1])
    xs = np.linspace(max(x0, x1 / 2000, 1e-9), x1, 240)
    fit = None
    if summary.get("lognormal_median") and d.size > 1:
        fit = d.size * width * psd.lognormal_pdf(xs, summary["lognormal_median"], summary["lognormal_sigma_g"])
    # The fit may peak above the bars (a narrow fit on coarse bins) but must not
    # flatten them: the axis stops at 1.5 x the tallest bar and the curve is clipped.
    tallest = float(counts.max())
    fit_top = float(np.nanmax(fit)) if fit is not None else 0.0
    ytop = max(tallest, min(fit_top, 1.5 * tallest)) * 1.08 or 1.0
    yt = nice_ticks(0, ytop, 5)
    if yt[0][-1] < ytop:
        yt[0].append(yt[0][-1] + yt[1])
    f = _Frame(x0, x1, 0, yt[0][-1])
    plot = f.axes(nice_ticks(x0, x1), yt, f"equivalent circular diameter / {unit}", "particles")
    plot["bars"] = [{"x": round(float(f.x(a)), 2), "w": round(float(f.x(a + width) - f.x(a)), 2),
                     "y": round(float(f.y(c)), 2), "h": round(float(f.y(0) - f.y(c)), 2),
                     "title": f"{_tick_label(a, width)}\u2013{_tick_label(a + width, width)} {unit}: {c}"}
                    for a, c in zip(edges[:-1], counts) if c > 0]
    plot["fit"] = f.path(xs, np.minimum(fit, f.y1)) if fit is not None else ""
    plot["markers"] = _markers(f, summary)
    plot["off_scale"] = off
    plot["bin_width"] = _tick_label(width, width)
    return plot


def _markers(f: _Frame, summary: dict) -> list[dict]:
    """d10/d50/d90 lines; a label that would collide with its left neighbour
    moves one line down."""
    out, last_x, last_row = [], -1e9, 1
    for k in ("d10", "d50", "d90"):
        v = summary.get(k)
        if v is None or not f.x0 <= v <= f.x1:
            continue
        x = round(float(f.x(v)), 1)
        row = 1 - last_row if x - last_x < 28 else 0
        out.append({"x": x, "label": k, "dy": 13 * row})
        last_x, last_row = x, row
    return out


def cumulative_plot(d: np.ndarray, summary: dict, unit: str) -> dict | None:
    """Geometry of the cumulative number distribution (empirical, as a step
    curve, sampled at 600 quantiles for large samples so the page stays small)
    with the fitted lognormal's cumulative curve and d10/d50/d90."""
    d = np.sort(d[np.isfinite(d) & (d > 0)])
    if d.size == 0:
        return None
    x0, x1, off = _x_range(d)
    f = _Frame(x0, x1, 0, 100)
    plot = f.axes(nice_ticks(x0, x1), nice_ticks(0, 100, 5), f"equivalent circular diameter / {unit}",
                  "cumulative number / %")
    if d.size <= 600:
        xs = np.repeat(d, 2)
        ys = np.repeat(np.arange(d.size + 1) / d.size * 100, 2)[1:-1]
    else:
        p = np.linspace(0, 1, 601)
        xs, ys = np.quantile(d, p), p * 100
    xs = np.concatenate([[x0], np.clip(xs, x0, x1), [x1]])
    ys = np.concatenate([[0], ys, [ys[-1] if d[-1] > x1 else 100]])
    plot["ecdf"] = f.path(xs, ys)
    plot["fit"] = ""
    if summary.get("lognormal_median") and d.size > 1:
        fx = np.linspace(max(x0, x1 / 2000, 1e-9), x1, 240)
        plot["fit"] = f.path(fx, 100 * _lognormal_cdf(fx, summary["lognormal_median"],
                                                     summary["lognormal_sigma_g"]))
    plot["markers"] = _markers(f, summary)
    plot["levels"] = [{"y": round(float(f.y(v)), 1), "label": f"{v} %"} for v in (10, 50, 90)]
    plot["off_scale"] = off
    return plot


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


# --------------------------------------------------------------------------- reading

@contextmanager
def _snapshot(db) -> Iterator[None]:
    """All reads of one page from one consistent snapshot (WAL): the worker may
    commit the next image between two of our queries."""
    conn = db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


IMAGE_FIELDS = ("id", "path", "status", "reason", "duplicate_of", "nm_per_px", "scale_source",
                "scale_text", "model", "engine", "n_particles", "flags", "scale_details",
                "processed_at", "sha256")
PARTICLE_FIELDS = ("image_id", "number", "x", "y", "area_px", "area_nm2", "perimeter_px",
                   "perimeter_nm", "ecd_px", "ecd_nm", "feret_max_px", "feret_max_nm",
                   "feret_min_px", "feret_min_nm", "circularity", "solidity", "mean_intensity")


def _columns(db, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info([{table}])").fetchall()}


def _select(fields: tuple[str, ...], have: set[str], prefix: str) -> str:
    """Missing columns (an older store) read as NULL instead of failing."""
    return ", ".join(f"{prefix}.[{c}]" if c in have else f"NULL AS [{c}]" for c in fields)


def _read_sample(db, sample: str, chunk: int = 20_000) -> tuple[list[dict], np.ndarray]:
    """The sample's image rows and its particles as a float array (one row
    per particle, PARTICLE_FIELDS as columns, NULL as NaN, ordered by image
    and particle number). Two indexed queries; nothing outside the sample is
    touched. Rows are converted in chunks: 10^5 particles as Python tuples
    would cost ~60 MB, as float64 14 MB."""
    img_cols, part_cols = _columns(db, "images"), _columns(db, "particles")
    with _snapshot(db):
        cur = db.execute(f"SELECT {_select(IMAGE_FIELDS, img_cols, 'i')} FROM images i "
                         "WHERE i.sample = ?", [sample])
        images = [dict(zip(IMAGE_FIELDS, row)) for row in cur.fetchall()]
        cur = db.execute(
            f"SELECT {_select(PARTICLE_FIELDS, part_cols, 'p')} FROM images i "
            "JOIN particles p ON p.image_id = i.id WHERE i.sample = ? AND i.status = 'done'",
            [sample])
        blocks = []
        while rows := cur.fetchmany(chunk):
            blocks.append(np.array(rows, dtype=float).reshape(len(rows), len(PARTICLE_FIELDS)))
    parts = np.concatenate(blocks) if blocks else np.zeros((0, len(PARTICLE_FIELDS)))
    if parts.shape[0]:
        parts = parts[np.lexsort((parts[:, 1], parts[:, 0]))]  # by image, then particle number
    return images, parts


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


# --------------------------------------------------------------------------- sample page

def _write_csv(f: BinaryIO, parts: np.ndarray, images: dict[int, dict], chunk: int = 10_000) -> None:
    """Fiji "Results"-like CSV, one row per particle: lengths in nm and areas in
    nm^2 where the image's scale is known, in px otherwise; the Unit column says
    which, row by row, because a sample can hold both (a comment line would
    break Fiji's and Excel's import). Vectorised and streamed in chunks: 10^5
    rows in about half a second, without holding the whole text in memory."""
    out = io.TextIOWrapper(f, encoding="utf-8", newline="")
    csv.writer(out, lineterminator="\n").writerow(CSV_COLUMNS)
    if parts.shape[0] == 0:
        out.flush()
        out.detach()
        return
    col = {f: parts[:, i] for i, f in enumerate(PARTICLE_FIELDS)}
    ids = col["image_id"].astype(np.int64)
    k_of = {i: (images[i]["nm_per_px"] or np.nan) for i in np.unique(ids).tolist()}
    k = np.array([k_of[i] for i in ids.tolist()]) if len(k_of) > 1 else np.full(ids.size, k_of[ids[0]])
    scaled = np.isfinite(k) & (k > 0)

    def measure(nm_col: str | None, px_col: str, power: int) -> np.ndarray:
        px = col[px_col]
        from_px = px * k ** power
        nm = np.where(np.isnan(col[nm_col]), from_px, col[nm_col]) if nm_col else from_px
        return np.where(scaled, nm, px)

    values = [col["number"]] + [measure(nm, px, power) for nm, px, power, _ in _CSV_MEASURES] + [
        col["circularity"], col["solidity"], col["mean_intensity"],
        np.where(scaled, col["ecd_nm"], col["ecd_px"])]
    template = ",".join(["%.0f"] + [f"%.{d}f" for *_, d in _CSV_MEASURES] + ["%.4f", "%.4f", "%.3f", "%.4f"])
    table = np.column_stack(values)
    # Per image: the quoted label and the unit columns, formatted once.
    prefix, suffix = {}, {}
    for image_id in k_of:
        image = images[image_id]
        label = image["path"]
        if label[:1] in ("=", "+", "@"):  # a spreadsheet would run it as a formula
            label = "'" + label
        cell = io.StringIO()
        csv.writer(cell, lineterminator="").writerow([label])
        prefix[image_id] = cell.getvalue()
        suffix[image_id] = f"{'nm' if image['nm_per_px'] else 'px'},{image['scale_source'] or 'none'}"
    for start in range(0, ids.size, chunk):
        lines = [f"{n},{prefix[i]},{(template % tuple(row)).replace('nan', '')},{suffix[i]}\n"
                 for n, i, row in zip(range(start + 1, start + chunk + 1), ids[start:start + chunk].tolist(),
                                      table[start:start + chunk].tolist())]
        out.write("".join(lines))
    out.flush()
    out.detach()  # the caller's file stays open for write_atomic to close


def _per_image(parts: np.ndarray, images: list[dict]) -> dict[int, dict]:
    """n and d50 of each 'done' image, from its particles (nm where scaled)."""
    out: dict[int, dict] = {}
    if parts.size == 0:
        return out
    ids = parts[:, 0].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], ids.size]
    scaled = {im["id"]: bool(im["nm_per_px"]) for im in images}
    col_nm, col_px = PARTICLE_FIELDS.index("ecd_nm"), PARTICLE_FIELDS.index("ecd_px")
    for a, b in zip(starts, ends):
        image_id = int(ids[a])
        d = parts[a:b, col_nm if scaled.get(image_id) else col_px]
        d = d[np.isfinite(d)]
        out[image_id] = {"n": int(b - a), "d50": float(np.median(d)) if d.size else None}
    return out


def _sample_context(sample: str, images: list[dict], parts: np.ndarray, *, bootstrap: int,
                    min_particles: int) -> dict:
    by_id = {im["id"]: im for im in images}
    per_image = _per_image(parts, images)
    col = {f: i for i, f in enumerate(PARTICLE_FIELDS)}
    done = [im for im in images if im["status"] == "done"]
    scaled_ids = np.array([im["id"] for im in done if im["nm_per_px"]], dtype=float)
    in_nm = np.isin(parts[:, col["image_id"]], scaled_ids) if parts.size else np.zeros(0, bool)
    d_nm, d_px = parts[in_nm, col["ecd_nm"]], parts[~in_nm, col["ecd_px"]]

    summary = summarise(d_nm, "nm", bootstrap)
    summary_px = summarise(d_px, "px", bootstrap) if d_px.size else None

    rows, quarantined, skipped, alerts = [], [], [], []
    questionable_images, questionable_n = 0, 0
    for im in sorted(images, key=lambda r: _natural_key(r["path"])):
        flags = _json(im["flags"], [])
        details = _json(im["scale_details"], {})
        stats = per_image.get(im["id"], {"n": 0, "d50": None})
        prefix = f"{sample}/"
        row = {
            "path": im["path"], "status": im["status"], "reason": im["reason"],
            "n": stats["n"] if im["status"] == "done" else None,
            "d50": stats["d50"], "unit": "nm" if im["nm_per_px"] else "px",
            "nm_per_px": im["nm_per_px"], "scale_source": im["scale_source"],
            "scale_text": im["scale_text"], "model": im["model"], "engine": im["engine"],
            "processed": _local_time(im["processed_at"]),
            "flags": _flag_items(flags, details),
            "thumb": None, "duplicate_of": None,
            # the sample is the first folder of the path: no need to read it on every row
            "name": _strip(im["path"], prefix),
        }
        if im["status"] in ("quarantined", "skipped"):
            (quarantined if im["status"] == "quarantined" else skipped).append(row)
            continue
        if im["status"] == "duplicate":
            original = by_id.get(im["duplicate_of"])
            row["duplicate_of"] = (_strip(original["path"], prefix) if original
                                   else f"image {im['duplicate_of']}")
        if im["sha256"]:
            row["thumb_href"] = thumbnail_name(im["sha256"])
        if im["status"] == "done" and im["nm_per_px"] and QUESTIONABLE_SCALE.intersection(flags):
            row["questionable"] = True
            questionable_images += 1
            questionable_n += stats["n"]
        rows.append(row)

    unscaled = [r for r in rows if r["status"] == "done" and not r["nm_per_px"]]
    duplicates = [r for r in rows if r["status"] == "duplicate"]
    if unscaled:
        alerts.append({"level": "bad", "anchor": "unscaled", "text":
                       f"{_count(len(unscaled), 'image has', 'images have')} no scale: their "
                       f"{int(d_px.size)} particles are measured in pixels only and are not part of the nm PSD; they are "
                       "listed separately below."})
    if questionable_images:
        alerts.append({"level": "warn", "anchor": "images", "text":
                       f"{questionable_n} of the {summary['n']} particles in the nm PSD come from "
                       f"{_count(questionable_images, 'image', 'images')} whose scale is questionable (disputed, "
                       "assumed or from a weak source): check the flags in the image table."})
    if summary["n"] == 0:
        alerts.append({"level": "bad", "anchor": "images",
                       "text": "No particles measured with a known scale: there is no nm PSD yet."})
    elif summary["n"] < min_particles:
        alerts.append({"level": "warn", "anchor": "psd", "text":
                       f"Only {summary['n']} particles (fewer than {min_particles}): d50 and the "
                       "fit are uncertain; see the width of the 95 % interval."})
    if quarantined:
        alerts.append({"level": "bad", "anchor": "quarantined", "text":
                       f"{_count(len(quarantined), 'file', 'files')} of this sample "
                       f"{'was' if len(quarantined) == 1 else 'were'} quarantined and not measured "
                       "(reasons below)."})
    unsure = [r for r in rows if r["status"] == "done" and any(f["flag"] == "segmentation_unsure"
                                                                for f in r["flags"])]
    if unsure:
        alerts.append({"level": "warn", "anchor": "images", "text":
                       f"{_count(len(unsure), 'image', 'images')}: segmentation unsure (an independent "
                       "check sees bright compact blobs that were not segmented): check "
                       f"{'it' if len(unsure) == 1 else 'them'} by eye."})
    if skipped:
        alerts.append({"level": "info", "anchor": "skipped", "text":
                       f"{_count(len(skipped), 'file was', 'files were')} skipped as bright-field "
                       "(or otherwise not HAADF) and not measured (listed below)."})
    if duplicates:
        alerts.append({"level": "info", "anchor": "images", "text":
                       f"{_count(len(duplicates), 'file is a', 'files are')} byte-identical "
                       f"cop{'y' if len(duplicates) == 1 else 'ies'} of another image of this sample, "
                       "counted once."})

    models = sorted({f"{r['model'] or '?'}" for r in rows if r["status"] == "done"})
    return {
        "sample": sample, "summary": summary, "summary_px": summary_px,
        "hist": histogram_plot(d_nm, summary, "nm"), "cdf": cumulative_plot(d_nm, summary, "nm"),
        "hist_px": histogram_plot(d_px, summary_px, "px") if summary_px else None,
        "rows": rows, "quarantined": quarantined, "skipped": skipped, "alerts": alerts, "unscaled": unscaled,
        "counts": {"images": len(images), "done": len(done), "quarantined": len(quarantined),
                   "skipped": len(skipped),
                   "duplicate": len(duplicates), "unscaled": len(unscaled)},
        "models": models, "min_particles": min_particles,
        "last_update": _local_time(max((im["processed_at"] or "" for im in images), default=None)),
        "csv_name": sample_csv_name(sample), "n_csv": int(parts.shape[0]),
        **_now_context(),
    }


def _ensure_summary_table(db) -> None:
    db.execute(f"""CREATE TABLE IF NOT EXISTS [{SUMMARY_TABLE}] (
        sample TEXT PRIMARY KEY, page TEXT, unit TEXT, n INTEGER, d10 REAL, d50 REAL, d90 REAL,
        d50_lo REAL, d50_hi REAL, mean REAL, std REAL, lognormal_median REAL,
        lognormal_sigma_g REAL, n_px INTEGER, images_done INTEGER, as_of TEXT, generated_at TEXT)""")


def _save_summary(db, sample: str, images: list[dict], summary: dict, n_px: int) -> None:
    """Cache the sample's numbers for the index page. A report built from an
    older snapshot (two writers racing) never overwrites a newer one."""
    ci = summary.get("d50_ci95") or [None, None]
    row = {"sample": sample, "page": sample_page_name(sample), "unit": "nm", "n": summary["n"],
           "d10": summary["d10"], "d50": summary["d50"], "d90": summary["d90"],
           "d50_lo": ci[0], "d50_hi": ci[1], "mean": summary["mean"], "std": summary["std"],
           "lognormal_median": summary["lognormal_median"],
           "lognormal_sigma_g": summary["lognormal_sigma_g"], "n_px": n_px,
           "images_done": sum(im["status"] == "done" for im in images),
           "as_of": max((im["processed_at"] or "" for im in images), default=""),
           "generated_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    cols = ", ".join(SUMMARY_COLUMNS)
    marks = ", ".join("?" for _ in SUMMARY_COLUMNS)
    update = ", ".join(f"{c} = excluded.{c}" for c in SUMMARY_COLUMNS if c != "sample")
    sql = (f"INSERT INTO [{SUMMARY_TABLE}] ({cols}) VALUES ({marks}) ON CONFLICT(sample) DO UPDATE "
           f"SET {update} WHERE excluded.as_of >= IFNULL([{SUMMARY_TABLE}].as_of, '')")
    conn = db.conn
    nested = conn.in_transaction
    try:
        if not nested:
            conn.execute("BEGIN IMMEDIATE")
        _ensure_summary_table(db)
        conn.execute(sql, [row[c] for c in SUMMARY_COLUMNS])
        if not nested:
            conn.execute("COMMIT")
    except sqlite3.Error as error:
        if not nested and conn.in_transaction:
            conn.execute("ROLLBACK")
        # The page is written; only the index's cached numbers lag behind.
        log.warning("could not cache the summary of sample %r for the index: %s", sample, error)


def write_sample_report(db, sample: str, reports_dir: Path, *, bootstrap: int = 1000,
                        min_particles: int = 100) -> Path:
    """Regenerate the page and CSV of one sample from the store; returns the page.

    reports_dir/<slug>.html and <slug>.csv (see sample_slug), thumbnails linked
    from reports_dir/thumbs/ (written by write_thumbnail at processing time).
    The CSV is written before the page, so the page never links a CSV that is
    not there yet. bootstrap and min_particles are [psd] of the config.
    Cost: the sample's own rows only (indexed), whatever the size of the store.
    """
    reports_dir = Path(reports_dir)
    images, parts = _read_sample(db, sample)
    context = _sample_context(sample, images, parts, bootstrap=bootstrap, min_particles=min_particles)
    for row in context["rows"]:
        href = row.pop("thumb_href", None)
        row["thumb"] = href if href and (reports_dir / href).is_file() else None
    by_id = {im["id"]: im for im in images}
    write_atomic(reports_dir / context["csv_name"], lambda f: _write_csv(f, parts, by_id))
    page = write_atomic(reports_dir / sample_page_name(sample), render("sample.html", **context))
    _save_summary(db, sample, images, context["summary"],
                  int(context["summary_px"]["n"]) if context["summary_px"] else 0)
    return page


# --------------------------------------------------------------------------- index

INDEX_SQL = f"""
SELECT a.*, s.page, s.n, s.d50, s.d50_lo, s.d50_hi, s.n_px, s.images_done AS summary_done,
       s.as_of
FROM (SELECT sample, COUNT(*) AS images,
             SUM(status = 'done') AS done, SUM(status = 'quarantined') AS quarantined,
             SUM(status = 'duplicate') AS duplicate, SUM(status = 'skipped') AS skipped,
             SUM(status = 'done' AND nm_per_px IS NULL) AS unscaled,
             MAX(processed_at) AS last_update
      FROM images GROUP BY sample) AS a
LEFT JOIN [{SUMMARY_TABLE}] AS s ON s.sample = a.sample
ORDER BY a.last_update DESC, a.sample
"""
INDEX_SQL_NO_CACHE = INDEX_SQL.replace(
    f"LEFT JOIN [{SUMMARY_TABLE}] AS s ON s.sample = a.sample",
    "LEFT JOIN (SELECT NULL AS sample, NULL AS page, NULL AS n, NULL AS d50, NULL AS d50_lo, "
    "NULL AS d50_hi, NULL AS n_px, NULL AS images_done, NULL AS as_of) AS s ON 0")


def stale_samples(db, reports_dir: Path) -> list[str]:
    """Samples whose page is missing or older than their newest image: what
    write_index marks "updating", e.g. after a writer was killed between
    storing an image and writing its report."""
    reports_dir = Path(reports_dir)
    with _snapshot(db):
        cached = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            [SUMMARY_TABLE]).fetchone()
        cur = db.execute(INDEX_SQL if cached else INDEX_SQL_NO_CACHE)
        names = [c[0] for c in cur.description]
        samples = [dict(zip(names, row)) for row in cur.fetchall()]
    return [s["sample"] for s in samples
            if s["page"] is None or s["as_of"] != s["last_update"] or s["summary_done"] != (s["done"] or 0)
            or not (reports_dir / s["page"]).is_file()]


def _sweep_temporaries(reports_dir: Path, older_than_s: float = 3600) -> None:
    """Temporary files left by a writer killed between write and rename."""
    limit = time.time() - older_than_s
    with suppress(OSError), os.scandir(reports_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with suppress(OSError):
                    if entry.stat().st_mtime < limit:
                        os.unlink(entry.path)


def write_index(db, reports_dir: Path, *, min_particles: int = 100) -> Path:
    """Regenerate reports_dir/index.html: every sample with n, d50 and its last
    update, linking its page, and the store's totals.

    One aggregate query over `images` joined to the cached sample summaries; a
    sample whose page is older than its newest image is marked "updating".
    """
    reports_dir = Path(reports_dir)
    with _snapshot(db):
        cached = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            [SUMMARY_TABLE]).fetchone()
        cur = db.execute(INDEX_SQL if cached else INDEX_SQL_NO_CACHE)  # before any sample page
        names = [c[0] for c in cur.description]
        samples = [dict(zip(names, row)) for row in cur.fetchall()]
        queue = {}
        with suppress(sqlite3.Error):
            queue = dict(db.execute("SELECT state, COUNT(*) FROM queue GROUP BY state").fetchall())
    totals = {"queued": queue.get("queued", 0), "processing": queue.get("processing", 0),
              "done": 0, "quarantined": 0, "duplicate": 0, "skipped": 0, "samples": len(samples)}
    for s in samples:
        for key in ("done", "quarantined", "duplicate", "skipped"):
            s[key] = s[key] or 0
            totals[key] += s[key]
        s["stale"] = s["page"] is None or s["as_of"] != s["last_update"] or s["summary_done"] != s["done"]
        s["page"] = s["page"] if s["page"] and (reports_dir / s["page"]).is_file() else None
        s["updated"] = _local_time(s["last_update"])
        s["few"] = s["n"] is not None and 0 < s["n"] < min_particles
    html = render("index.html", samples=samples, totals=totals, min_particles=min_particles,
                  **_now_context())
    path = write_atomic(reports_dir / "index.html", html)
    _sweep_temporaries(reports_dir)
    return path


def write_reports(db, reports_dir: Path, samples: list[str] | None = None, **psd_settings) -> Path:
    """`psdwatch report`: rebuild the pages of `samples` (all when None), then
    the index. Returns the index path."""
    if samples is None:
        samples = [r[0] for r in db.execute("SELECT DISTINCT sample FROM images ORDER BY sample")]
    for sample in samples:
        write_sample_report(db, sample, reports_dir, **psd_settings)
    return write_index(db, reports_dir, min_particles=psd_settings.get("min_particles", 100))
