"""One sample's page, at a cost that does not grow with the sample.

The page's figures come from the sample's kept numbers (sample_stats): counts by
status, models, and the merged size histogram. A sample small enough for the
bootstrap interval (n x bootstrap <= pipeline.psd.MAX_BOOTSTRAP_DRAWS, i.e. up
to 4,000 particles at 1,000 resamples) is summarised from its particles, exactly
as before, which costs at most those 4,000 rows; a larger one from its
histogram, with the order-statistic interval summarise_sample also uses there.
The page lists the latest `page_images` images; older ones are listed in
archive pages of that many images each, written once when their block is full
and again only when one of their images changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from . import page_render as R
from ..store import sample_stats
from .names import sample_archive_name, sample_csv_name, sample_page_name, thumbnail_name, view_name
from .plots import cumulative_plot, histogram_plot, psd_quantiles
from ..store import report_state, sample_reads
from ..store.queries import save_summary, snapshot
from .sample_csv import update_csv
from .view_pages import ensure_view_page
from ...pipeline.io.files import write_atomic
from ...pipeline.measure.psd import MAX_BOOTSTRAP_DRAWS, summarise_sample
from ...pipeline.measure.psd_histogram import SizeHistogram, summarise_histogram

PAGE_IMAGES = 500


@dataclass
class SampleData:
    """What one page is drawn from, read in one snapshot."""
    counts: dict
    models: dict[str, int]
    images: list[dict]
    originals: dict[int, str] = field(default_factory=dict)
    summaries: dict[int, tuple] = field(default_factory=dict)
    sizes: dict[str, object] = field(default_factory=dict)  # unit -> array (small) or SizeHistogram


def _details(db, images: list[dict]) -> tuple[dict[int, str], dict[int, tuple]]:
    """The paths duplicates point at, and each image's kept n and d50."""
    targets = sorted({im["duplicate_of"] for im in images if im["duplicate_of"]})
    return sample_reads.image_paths(db, targets), sample_reads.image_summaries(db, [im["id"] for im in images])


def read_sample_data(db, sample: str, bootstrap: int, page_images: int = PAGE_IMAGES) -> SampleData:
    """The kept numbers, the latest images and the sizes of one sample, in one snapshot."""
    with snapshot(db):
        data = SampleData(sample_stats.sample_counts(db, sample), sample_stats.sample_models(db, sample),
                          sample_reads.latest_images(db, sample, page_images))
        data.originals, data.summaries = _details(db, data.images)
        for unit in ("nm", "px"):
            h = sample_stats.histogram(db, sample, unit)
            small = h.n * max(bootstrap, 1) <= MAX_BOOTSTRAP_DRAWS
            data.sizes[unit] = sample_reads.exact_sizes(db, sample, unit) if small and h.n else h
    return data


def figures(sizes, unit: str, bootstrap: int) -> dict:
    """pipeline.psd.summarise_sample's figures, from particles or the merged histogram."""
    if isinstance(sizes, SizeHistogram):
        return summarise_histogram(sizes, unit)
    return summarise_sample(sizes, unit, bootstrap)


def image_rows(sample: str, data: SampleData) -> tuple[list[dict], list[dict], list[dict]]:
    """The table rows of the listed images (measured and duplicates), the
    quarantined and the skipped ones, in natural file-name order."""
    rows, quarantined, skipped = [], [], []
    prefix = f"{sample}/"
    for im in sorted(data.images, key=lambda r: R._natural_key(r["path"])):
        flags = R._json(im["flags"], [])
        n, d50 = data.summaries.get(im["id"], (0, None))
        row = {
            "path": im["path"], "status": im["status"], "reason": im["reason"],
            "n": (im["n_particles"] if im["n_particles"] is not None else n) if im["status"] == "done" else None,
            "d50": d50, "unit": "nm" if im["nm_per_px"] else "px",
            "nm_per_px": im["nm_per_px"], "scale_source": im["scale_source"],
            "scale_text": im["scale_text"], "model": im["model"], "engine": im["engine"],
            "processed": R._local_time(im["processed_at"]),
            "flags": R._flag_items(flags, R._json(im["scale_details"], {})),
            "thumb": None, "duplicate_of": None,
            "missing": R._local_time(im["missing_since"]) if im["missing_since"] else None,
            "name": R._strip(im["path"], prefix),
        }
        if im["status"] in ("quarantined", "skipped"):
            (quarantined if im["status"] == "quarantined" else skipped).append(row)
            continue
        if im["status"] == "duplicate":
            original = data.originals.get(im["duplicate_of"])
            row["duplicate_of"] = R._strip(original, prefix) if original else f"image {im['duplicate_of']}"
        if im["sha256"]:
            row["thumb_href"], row["view_href"] = thumbnail_name(im["sha256"]), view_name(im["sha256"])
        if im["status"] == "done" and im["nm_per_px"] and R.QUESTIONABLE_SCALE.intersection(flags):
            row["questionable"] = True
        rows.append(row)
    return rows, quarantined, skipped


def _plural(n: int, one: str, many: str) -> str:
    return R._count(n, one, many)


def alerts(c: dict, summary: dict, n_px: int, models: dict[str, int], min_particles: int) -> list[dict]:
    """The warnings at the top of the page, from the sample's kept counts."""
    out: list[dict] = []

    def add(when: bool, level: str, anchor: str, text: str) -> None:
        if when:
            out.append({"level": level, "anchor": anchor, "text": text})

    n = summary["n"]
    add(c["unscaled"], "bad", "unscaled",
        f"{_plural(c['unscaled'], 'image has', 'images have')} no scale: "
        f"{'its' if c['unscaled'] == 1 else 'their'} {n_px} particles are measured "
        "in pixels only and are not part of the nm PSD; they are listed separately below.")
    add(c["questionable"], "warn", "images",
        f"{c['questionable_n']} of the {n} particles in the nm PSD come from "
        f"{_plural(c['questionable'], 'image', 'images')} whose scale is questionable (disputed, "
        "assumed or from a weak source): check the flags in the image table.")
    add(n == 0, "bad", "images", "No particles measured with a known scale: there is no nm PSD yet.")
    add(0 < n < min_particles, "warn", "psd", f"Only {n} particles (fewer than {min_particles}): d50 and the "
        "fit are uncertain; see the width of the 95 % interval.")
    add(c["quarantined"], "bad", "quarantined",
        f"{_plural(c['quarantined'], 'file', 'files')} of this sample "
        f"{'was' if c['quarantined'] == 1 else 'were'} quarantined and not measured (reasons below).")
    add(c["unsure"], "warn", "images",
        f"{_plural(c['unsure'], 'image', 'images')}: segmentation unsure (an independent check sees bright "
        f"compact blobs that were not segmented): check {'it' if c['unsure'] == 1 else 'them'} by eye.")
    add(c["missing"], "warn", "images",
        f"{_plural(c['missing'], 'file', 'files')} measured here {'has' if c['missing'] == 1 else 'have'} "
        "since been deleted from the share; the results stay in this report (marked in the table).")
    add(c["skipped"], "info", "skipped",
        f"{_plural(c['skipped'], 'file was', 'files were')} skipped as bright-field "
        "(or otherwise not HAADF) and not measured (listed below).")
    add(c["duplicate"], "info", "images",
        f"{_plural(c['duplicate'], 'file is a', 'files are')} byte-identical "
        f"cop{'y' if c['duplicate'] == 1 else 'ies'} of another image of this sample, counted once.")
    add(len(models) > 1, "warn", "images",
        "Mixed models: this sample's images were measured with "
        + ", ".join(f"{m} ({_plural(k, 'image', 'images')})" for m, k in sorted(models.items()))
        + f"; the PSD mixes {len(models)} instruments. Re-measure them with one model (psdwatch reprocess).")
    return out


def _archives(sample: str, images: int, page_images: int) -> list[dict]:
    blocks = images // page_images if images > page_images else 0
    return [{"href": sample_archive_name(sample, k + 1), "first": k * page_images + 1,
             "last": (k + 1) * page_images} for k in range(blocks)]


def sample_context(sample: str, data: SampleData, *, bootstrap: int, min_particles: int,
                   page_images: int = PAGE_IMAGES) -> dict:
    """Everything sample.html draws, from what read_sample_data read."""
    c = data.counts
    d_nm, d_px = data.sizes["nm"], data.sizes["px"]
    summary = figures(d_nm, "nm", bootstrap)
    n_px = d_px.n if isinstance(d_px, SizeHistogram) else int(np.isfinite(d_px).sum())
    summary_px = figures(d_px, "px", bootstrap) if n_px else None
    rows, quarantined, skipped = image_rows(sample, data)
    unscaled = [r for r in rows if r["status"] == "done" and not r["nm_per_px"]]
    return {
        "sample": sample, "summary": summary, "summary_px": summary_px, "archive": None,
        "hist": histogram_plot(d_nm, summary, "nm"), "cdf": cumulative_plot(d_nm, summary, "nm"),
        "quantiles": psd_quantiles(d_nm),
        "hist_px": histogram_plot(d_px, summary_px, "px") if summary_px else None,
        "rows": rows, "quarantined": quarantined, "skipped": skipped, "unscaled": unscaled,
        "alerts": alerts(c, summary, n_px, data.models, min_particles),
        "counts": {k: c[k] for k in ("images", "done", "quarantined", "skipped", "duplicate", "unscaled")},
        "listed": len(data.images), "archives": _archives(sample, c["images"], page_images),
        "models": sorted(data.models), "min_particles": min_particles,
        "last_update": R._local_time(c["last_update"]),
        "csv_name": sample_csv_name(sample), "n_csv": 0, "page_name": sample_page_name(sample),
        **R._now_context(),
    }


def _link_pictures(rows: list[dict], reports_dir: Path, sample: str) -> None:
    """Thumbnails and full-resolution views that exist; each view gets its page (name,
    legend, a link back), written once."""
    page_render = partial(R.render, **R._now_context())
    for row in rows:
        href, view = row.pop("thumb_href", None), row.pop("view_href", None)
        row["thumb"] = href if href and (reports_dir / href).is_file() else None
        row["view"] = (ensure_view_page(reports_dir, sample, sample_page_name(sample), row, view, page_render)
                       if view and (reports_dir / view).is_file() else row["thumb"])


def write_sample_report(db, sample: str, reports_dir: Path, *, bootstrap: int = 1000,
                        min_particles: int = 100, page_images: int = PAGE_IMAGES,
                        rewrite_csv: bool = True) -> Path:
    """Regenerate the page of one sample (its CSV brought up to date first, so the
    page never links rows that are not there yet; its archive pages where they
    are new or changed); returns the page. rewrite_csv=False appends to the CSV
    the images stored since it was last written (the report scheduler knows when
    that is enough). Cost: the latest page_images images, the kept numbers and
    at most 4,000 particles, whatever the size of the sample or the store."""
    reports_dir = Path(reports_dir)
    data = read_sample_data(db, sample, bootstrap, page_images)
    context = sample_context(sample, data, bootstrap=bootstrap, min_particles=min_particles, page_images=page_images)
    _link_pictures(context["rows"], reports_dir, sample)
    context["edges"] = sample_reads.edge_counts(db, [im["id"] for im in data.images])
    context["n_csv"] = update_csv(db, sample, reports_dir, rewrite_csv)
    write_archive_pages(db, sample, reports_dir, context, page_images)
    page = write_atomic(reports_dir / sample_page_name(sample), R.render("sample.html", **context))
    summary = context["summary"]
    save_summary(db, sample, sample_page_name(sample), data.counts["done"], data.counts["last_update"] or "",
                 summary, int(context["summary_px"]["n"]) if context["summary_px"] else 0, context.pop("quantiles"))
    return page


def _blocks_to_write(db, sample: str, blocks: int, page_images: int,
                     reports_dir: Path) -> tuple[set[int], list[int]]:
    """Archive blocks never written (or whose file is gone), and those holding an image changed since."""
    written = {b for b in report_state.archive_blocks(db, sample)
               if (reports_dir / sample_archive_name(sample, b + 1)).is_file()}
    todo = set(range(blocks)) - written
    changed = report_state.changed_images(db, sample)
    for image_id in changed:
        rank = sample_reads.image_rank(db, sample, image_id)
        if rank // page_images < blocks:
            todo.add(rank // page_images)
    return todo, changed


def write_archive_pages(db, sample: str, reports_dir: Path, context: dict, page_images: int) -> None:
    """The pages of the sample's full blocks of older images that are new or changed."""
    blocks = len(context["archives"])
    todo, changed = _blocks_to_write(db, sample, blocks, page_images, reports_dir)
    for block in sorted(todo):
        data = SampleData(context["counts"], {},
                          sample_reads.image_block(db, sample, page_images, block * page_images))
        data.originals, data.summaries = _details(db, data.images)
        rows, quarantined, skipped = image_rows(sample, data)
        _link_pictures(rows, reports_dir, sample)
        page = {**context, "rows": rows, "quarantined": quarantined, "skipped": skipped, "unscaled": [],
                "edges": sample_reads.edge_counts(db, [im["id"] for im in data.images]),
                "archive": context["archives"][block], "listed": len(data.images)}
        write_atomic(reports_dir / sample_archive_name(sample, block + 1), R.render("sample.html", **page))
        report_state.archive_block_written(db, sample, block)
    report_state.changes_drawn(db, changed)

