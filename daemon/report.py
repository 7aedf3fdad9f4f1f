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
names (names), thumbnails, the SVG plots, the CSV; the statistics are
pipeline.psd's and every file goes through pipeline.files.write_atomic, so a
person refreshing a page never sees half of it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np

from ..pipeline import __version__ as SOFTWARE_VERSION
from ..pipeline.files import sweep_temporaries, write_atomic
from ..pipeline.psd import summarise_sample as summarise
from .names import (THUMBS, sample_csv_name, sample_page_name, sample_slug, thumbnail_name,  # noqa: F401
                    thumbnail_path, view_name)
from .particles_csv import CSV_COLUMNS, write_csv  # noqa: F401
from .plots import cumulative_plot, d50_dotplot, format_number, histogram_plot, overlay_plot, psd_quantiles
from .store import models_by_sample
from .queries import PARTICLE_FIELDS, SUMMARY_TABLE, index_rows, queue_counts, read_sample, save_summary  # noqa: F401
from .thumbnails import write_thumbnail  # noqa: F401

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


# --------------------------------------------------------------------------- sample page

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
    edge_col = parts[:, col["edge"]] if parts.size else np.zeros(0)
    edges = {"profile": int((edge_col == 1).sum()), "mask": int((edge_col == 0).sum())}

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
            "missing": _local_time(im["missing_since"]) if im["missing_since"] else None,
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
            row["thumb_href"], row["view_href"] = thumbnail_name(im["sha256"]), view_name(im["sha256"])
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
    gone = [r for r in rows if r["missing"]]
    if gone:
        alerts.append({"level": "warn", "anchor": "images", "text":
                       f"{_count(len(gone), 'file', 'files')} measured here "
                       f"{'has' if len(gone) == 1 else 'have'} since been deleted from the share; "
                       "the results stay in this report (marked in the table)."})
    if skipped:
        alerts.append({"level": "info", "anchor": "skipped", "text":
                       f"{_count(len(skipped), 'file was', 'files were')} skipped as bright-field "
                       "(or otherwise not HAADF) and not measured (listed below)."})
    if duplicates:
        alerts.append({"level": "info", "anchor": "images", "text":
                       f"{_count(len(duplicates), 'file is a', 'files are')} byte-identical "
                       f"cop{'y' if len(duplicates) == 1 else 'ies'} of another image of this sample, "
                       "counted once."})

    by_model: dict[str, int] = {}
    for r in rows:
        if r["status"] == "done":
            by_model[r["model"] or "?"] = by_model.get(r["model"] or "?", 0) + 1
    models = sorted(by_model)
    if len(models) > 1:
        alerts.append({"level": "warn", "anchor": "images", "text":
                       "Mixed models: this sample's images were measured with "
                       + ", ".join(f"{m} ({_count(n, 'image', 'images')})" for m, n in sorted(by_model.items()))
                       + f"; the PSD mixes {len(models)} instruments. Re-measure them with one model "
                       "(psdwatch reprocess)."})
    return {
        "sample": sample, "summary": summary, "summary_px": summary_px,
        "hist": histogram_plot(d_nm, summary, "nm"), "cdf": cumulative_plot(d_nm, summary, "nm"),
        "quantiles": psd_quantiles(d_nm),
        "hist_px": histogram_plot(d_px, summary_px, "px") if summary_px else None,
        "rows": rows, "quarantined": quarantined, "skipped": skipped, "alerts": alerts, "unscaled": unscaled,
        "counts": {"images": len(images), "done": len(done), "quarantined": len(quarantined),
                   "skipped": len(skipped),
                   "duplicate": len(duplicates), "unscaled": len(unscaled)},
        "models": models, "min_particles": min_particles,
        "last_update": _local_time(max((im["processed_at"] or "" for im in images), default=None)),
        "csv_name": sample_csv_name(sample), "n_csv": int(parts.shape[0]), "edges": edges,
        **_now_context(),
    }


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
    images, parts = read_sample(db, sample)
    context = _sample_context(sample, images, parts, bootstrap=bootstrap, min_particles=min_particles)
    for row in context["rows"]:
        href, view = row.pop("thumb_href", None), row.pop("view_href", None)
        row["thumb"] = href if href and (reports_dir / href).is_file() else None
        row["view"] = view if view and (reports_dir / view).is_file() else row["thumb"]
    by_id = {im["id"]: im for im in images}
    write_atomic(reports_dir / context["csv_name"], lambda f: write_csv(f, parts, by_id))
    page = write_atomic(reports_dir / sample_page_name(sample), render("sample.html", **context))
    save_summary(db, sample, sample_page_name(sample), images, context["summary"],
                 int(context["summary_px"]["n"]) if context["summary_px"] else 0, context.pop("quantiles"))
    return page


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


def write_index(db, reports_dir: Path, *, min_particles: int = 100, compare: int = 12) -> Path:
    """Regenerate reports_dir/index.html: every sample with n, d50 and its last
    update, linking its page, and the store's totals; then the samples side by
    side: the cumulative PSDs of the `compare` most recent samples overlaid
    ([reports] compare_samples; 0 = none), and every sample's d50 with its 95 %
    interval as a dot plot.

    One aggregate query over `images` joined to the cached sample summaries; a
    sample whose page is older than its newest image is marked "updating".
    """
    reports_dir = Path(reports_dir)
    samples, queue = index_rows(db), queue_counts(db)
    mixed_samples = [s["sample"] for s in samples if (s["models"] or 0) > 1]
    mixed = models_by_sample(db, mixed_samples) if mixed_samples else {}
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
        s["quantiles"] = _json(s["quantiles"], None)
        s["mixed"] = ", ".join(f"{m} ({_count(k, 'image', 'images')})" for m, k in mixed.get(s["sample"], {}).items())
    html = render("index.html", samples=samples, totals=totals, min_particles=min_particles,
                  dotplot=d50_dotplot(samples), overlay=overlay_plot(samples, compare) if compare else None,
                  **_now_context())
    path = write_atomic(reports_dir / "index.html", html)
    sweep_temporaries(reports_dir)
    return path


def write_reports(db, reports_dir: Path, samples: list[str] | None = None, **psd_settings) -> Path:
    """`psdwatch report`: rebuild the pages of `samples` (all when None), then
    the index. Returns the index path."""
    if samples is None:
        samples = [r[0] for r in db.execute("SELECT DISTINCT sample FROM images ORDER BY sample")]
    for sample in samples:
        write_sample_report(db, sample, reports_dir, **psd_settings)
    return write_index(db, reports_dir, min_particles=psd_settings.get("min_particles", 100))
