"""One image through the whole method: read, scale, segment, measure, PSD.

This is the single code path that `psdwatch process`, the daemon and the
benchmarks share, so that what is measured and tested is what runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .segment import blobs, coarse, contrast, engines as segment, fine, size
from .measure import edge, necks, particles as measure, psd
from .scale import reader as scale
from .io.calibration import Calibration
from .io.image import LoadedImage, load_image
from .settings import Settings
from .runtime.models import Model


@dataclass
class Analysis:
    image: str
    nm_per_px: float | None
    scale_source: str | None
    scale_text: str | None
    engine: str
    model: str
    model_sha256: str | None
    particles: list[dict]
    psd: dict
    flags: list[str]
    mask: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    data: np.ndarray = field(repr=False)
    timings: dict = field(default_factory=dict)
    scale_details: dict = field(default_factory=dict)
    excluded_fraction: float = 0.0
    segment_scale: float = 1.0
    checks: dict = field(default_factory=dict)


@dataclass
class ScaleDecision:
    nm_per_px: float | None
    source: str | None
    text: str | None
    flags: list[str]
    details: dict


def decide_nm_per_px(calibration: Calibration | None, bar: scale.ScaleBar | None,
                 fallback: float | None, disagreement_pct: float) -> ScaleDecision:
    """Pick the scale in DESIGN's order: file calibration, then a confident
    scale-bar read, then the configured fallback; otherwise none at all.

    Where both the file and the bar give a scale they are cross-checked: the
    file wins (it is exact), but a disagreement is flagged for a person to see,
    since it means either a wrong calibration or a wrong bar.
    """
    flags: list[str] = []
    details: dict = {}
    if bar is not None:
        details["bar"] = {"text": bar.text, "nm": bar.nm, "length_px": round(bar.length_px, 2),
                          "nm_per_px": bar.nm_per_px, "confident": bar.confident}
        if not bar.confident:
            flags.append("scale_bar_unsure")
    if calibration is not None:
        details["file"] = {"nm_per_px": calibration.nm_per_px, "source": calibration.source,
                           "text": calibration.text}
        if bar is not None and bar.confident:
            diff = abs(bar.nm_per_px - calibration.nm_per_px) / calibration.nm_per_px * 100
            details["disagreement_pct"] = round(diff, 2)
            if diff > disagreement_pct:
                flags.append("scale_disputed")
        return ScaleDecision(calibration.nm_per_px, "metadata", calibration.text, flags, details)
    if bar is not None and bar.confident:
        return ScaleDecision(bar.nm_per_px, "ocr", bar.text, flags, details)
    if fallback:
        return ScaleDecision(float(fallback), "config", f"[scale] nm_per_px = {fallback}",
                             flags + ["scale_from_config"], details)
    return ScaleDecision(None, None, None, flags + ["scale_unknown"], details)


_CHANNEL_MIN_PX = 100  # a bar read in one colour channel: JPEG's half-resolution colour may move each end ~1 px


def _coloured(colour: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the bar in ``box`` is drawn in colour: its pixels' channels differ by 15 %
    of the range or more.  A black or white bar in a figure with a red arrow elsewhere
    reads alike in every channel, and its doubts in the grey stay."""
    x0, y0, x1, y1 = box
    px = colour[max(0, y0):max(y1, y0 + 1), max(0, x0):max(x1, x0 + 1)].reshape(-1, 3).astype(np.float32)  # Bar: ends exclusive
    return bool(px.size) and float(np.median(px.max(axis=1) - px.min(axis=1))) >= 0.15 * max(float(colour.max()), 1.0)


def read_scale_bar(data: np.ndarray, databar: np.ndarray | None,
                   colour: np.ndarray | None = None) -> scale.ScaleBar | None:
    """The scale bar, searched in the image and, for FEI/Thermo files, in the
    databar that io cut off below it (where those microscopes draw it).

    ``colour``: the file's RGB where it has colour (io.colour_of).  Where the grey gives
    no confident reading, each channel is read too: a bar and label drawn in colour
    stand out in them (a red one bright in R, dark in G and B).  A channel's reading is
    taken only where its bar is coloured, a second channel reads the same scale within
    1 %, and the grey read nothing or the same: JPEG keeps colour at half resolution, and a bar measured
    in one channel of a compressed figure was 2.5-6 % off, its label read right (in two
    channels alike, for a magenta bar of 26 px), so a bar shorter than 100 px is not
    taken from the channels."""
    if databar is None or databar.shape[1] != data.shape[1]:
        bar = scale.find_scale_bar(data)
    else:
        bar = scale.find_scale_bar(np.vstack([data, databar.astype(data.dtype)]))
    if colour is None or colour.shape[:2] != data.shape or (bar is not None and bar.confident):
        return bar
    seen: list[scale.ScaleBar] = []
    for c in range(3):  # channel by channel: two that agree are enough
        r = scale.find_scale_bar(colour[..., c])
        if r is None or not r.confident or r.length_px < _CHANNEL_MIN_PX or not _coloured(colour, r.bar_bbox):
            continue
        seen.append(r)
        for s in seen:
            same = [o for o in seen if abs(o.nm_per_px / s.nm_per_px - 1) <= 0.01]
            if len(same) >= 2 and (bar is None or abs(s.nm_per_px / bar.nm_per_px - 1) <= 0.01):
                return s
    return bar


def _bar_exclusion(shape: tuple[int, int], bar: scale.ScaleBar | None,
                   exclude: np.ndarray | None) -> np.ndarray | None:
    """The burned-in bar and its label are not sample: keep them out of segmentation."""
    if bar is None:
        return exclude
    out = np.zeros(shape, bool) if exclude is None else exclude.copy()
    x0, y0, x1, y1 = bar.exclude_bbox
    out[max(0, y0):y1 + 1, max(0, x0):x1 + 1] = True
    return out


def resolve_engine(engine: str, model: Model | None) -> str:
    """"auto" is the U-Net when a model is live, else the classical engine."""
    if engine == "auto":
        return "unet" if model is not None else "classical"
    if engine not in segment.ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(segment.ENGINES)}")
    return engine


@dataclass
class ReadImage:
    """An image read and its scale bar looked for: the steps before the network."""
    loaded: LoadedImage
    bar: scale.ScaleBar | None
    timings: dict


def read_image(path: str | Path, settings: Settings) -> ReadImage:
    """Read the file and find its scale bar: the part of analyse_image that needs
    no model, so the service can run it for the next image while the network
    measures this one (daemon/service/read_ahead.py)."""
    t = time.perf_counter()
    loaded = load_image(path)
    read_s, t = time.perf_counter() - t, time.perf_counter()
    bar = read_scale_bar(loaded.data, loaded.meta.get("databar"), loaded.colour) if settings.ocr else None
    return ReadImage(loaded, bar, {"read_s": read_s, "scale_s": time.perf_counter() - t})


def analyse_image(path: str | Path, settings: Settings, model: Model | None = None,
                  read: ReadImage | None = None) -> Analysis:
    """Particles and PSD of one image file (`read`: its read_image, done ahead).
    Raises io.UnreadableImage (a one-line reason) for files that cannot be read as an image."""
    read = read or read_image(path, settings)
    return analyse_loaded(read.loaded, settings, model, str(path), dict(read.timings), bar=read.bar)


def analyse_array(data: np.ndarray, settings: Settings, model: Model | None = None,
                  nm_per_px: float | None = None, name: str = "array") -> Analysis:
    """Particles and PSD of an image already in memory (training, tests, notebooks):
    the same method as analyse_image, without writing a file. `nm_per_px` plays
    the part of a file's calibration; without it the scale bar is read, as for a file."""
    calibration = (Calibration(float(nm_per_px), float(nm_per_px), float(nm_per_px), "given", f"{nm_per_px} nm/px")
                   if nm_per_px else None)
    loaded = LoadedImage(data=np.asarray(data, np.float32), calibration=calibration)
    return analyse_loaded(loaded, settings, model, name, {"read_s": 0.0})


_UNREAD: Any = object()  # the scale bar is not looked for yet


def analyse_loaded(loaded: LoadedImage, settings: Settings, model: Model | None, image: str,
                   timings: dict, bar: scale.ScaleBar | None = _UNREAD) -> Analysis:
    """The method on a read image: scale, bright-field check, size, segment, measure, PSD.
    `bar`: the scale bar read_image found (None: none), unless it is still to be looked for."""
    t = time.perf_counter()
    if bar is _UNREAD:
        bar = read_scale_bar(loaded.data, loaded.meta.get("databar"), loaded.colour) if settings.ocr else None
    decision = decide_nm_per_px(loaded.calibration, bar, settings.fallback_nm_per_px,
                                settings.disagreement_pct)
    exclude = _bar_exclusion(loaded.data.shape, bar, loaded.exclude)
    timings["scale_s"] = timings.get("scale_s", 0.0) + time.perf_counter() - t

    excluded = float(exclude.mean()) if exclude is not None else 0.0
    flags = list(loaded.flags + decision.flags)
    if excluded > settings.max_excluded_fraction:
        flags.append("large_exclusion")
    engine = resolve_engine(settings.engine, model)
    used_model = model if engine == "unet" else None
    threshold = settings.threshold if settings.threshold is not None else (
        used_model.threshold if used_model else 0.5)
    common = dict(image=image, nm_per_px=decision.nm_per_px, scale_source=decision.source,
                  scale_text=decision.text, engine=engine,
                  model=used_model.name if used_model else "classical",
                  model_sha256=used_model.sha256 if used_model else None,
                  data=loaded.data, scale_details=decision.details, excluded_fraction=excluded)

    if settings.skip_bright_field:
        bright_field, why = contrast.is_bright_field(loaded.data, loaded.meta, exclude)
        if bright_field:
            empty = np.zeros(loaded.data.shape, bool)
            return Analysis(**common, particles=[], psd=psd.summarise([], "nm" if decision.nm_per_px else "px"),
                            flags=list(dict.fromkeys(flags + ["bright_field"])), mask=empty,
                            labels=empty.astype(np.int32), timings=timings,
                            checks={"bright_field": why, "edge": edge.edge_summary(settings.edge, None, {})})

    survey, sizing, coarse_merge, raw_mask, engine = _segment_at_size(
        loaded.data, exclude, decision.nm_per_px, settings, engine, model, threshold, timings)
    t = time.perf_counter()
    smallest = measure.min_area_px(decision.nm_per_px, settings.min_diameter_nm, settings.min_area_px)
    min_area = max(smallest, size.fragment_area_px(sizing))
    mask = measure.clean_mask(raw_mask, min_area)
    mask, fine_add = _add_small_particles(loaded.data, mask, exclude, decision.nm_per_px, survey, sizing,
                                          min_area, smallest, _engine_args(settings, engine, model, threshold),
                                          settings.size_aware, timings)
    if fine_add.added:      # the added particles are below the fragment size; the working mask was cleaned
        min_area = smallest
    mask, labels, particles, edge_info = measure_with_edge(loaded.data, mask, exclude, settings,
                                                           decision.nm_per_px, min_area, timings)
    timings["measure_s"] = time.perf_counter() - t - timings.get("fine_s", 0.0)

    t = time.perf_counter()
    key, unit = ("ecd_nm", "nm") if decision.nm_per_px else ("ecd_px", "px")
    summary = psd.summarise([p[key] for p in particles], unit, settings.bootstrap)
    timings["psd_s"] = time.perf_counter() - t

    missed = blobs.cross_check(survey, mask)
    flags += psd.psd_flags(summary, settings.min_particles)
    if _unsure(missed, sizing, particles):
        flags.append("segmentation_unsure")
    checks = {"size": {"scale": round(sizing.scale, 4), "reason": sizing.reason,
                       "blob_diameter_px": sizing.blob_diameter_px,
                       "probe_diameter_px": sizing.probe_diameter_px, "probe_count": sizing.probe_count,
                       "coarse_scale": coarse_merge.scale and round(coarse_merge.scale, 4),
                       "coarse_candidates": coarse_merge.candidates, "coarse_replaced": coarse_merge.replaced,
                       "fine_scale": fine_add.scale and round(fine_add.scale, 4),
                       "fine_candidates": fine_add.candidates, "fine_added": fine_add.added},
              "cross_check": {"blobs": missed.blobs, "missed": missed.missed}, "edge": edge_info}
    return Analysis(**common, particles=particles, psd=summary, flags=list(dict.fromkeys(flags)),
                    mask=mask, labels=labels, timings=timings, segment_scale=sizing.scale, checks=checks)


def _engine_args(settings: Settings, engine: str, model: Model | None, threshold: float) -> dict:
    """What every segmentation pass of a frame shares: the engine, its model, tiling and threshold."""
    return dict(engine=engine, model=model, tile=settings.tile, overlap=settings.overlap, threshold=threshold,
                precision=model.precision if model is not None else "fp32")


def _segment_at_size(data: np.ndarray, exclude: np.ndarray | None, nm_per_px: float | None, settings: Settings,
                     engine: str, model: Model | None, threshold: float, timings: dict
                     ) -> tuple[blobs.Blobs, size.SizeDecision, coarse.CoarseMerge, np.ndarray, str]:
    """The blob survey, the resampling the particles' size asks for (size-aware
    segmentation), and the engine's mask at that scale, in the frame's pixels, with
    the particles too large for that scale outlined by a coarser pass (segment.coarse)."""
    t = time.perf_counter()
    survey = blobs.find_blobs(data, exclude)
    seg = _engine_args(settings, engine, model, threshold)
    sizing = size.SizeDecision(1.0, None, None, 0, "size-aware segmentation is off")
    if settings.size_aware:
        def segment_at(small: np.ndarray, small_exclude: np.ndarray | None) -> np.ndarray:
            return segment.segment(small, exclude=small_exclude, **seg)[0]
        sizing = size.decide_segment_scale(data, exclude, survey, segment_at, settings.target_diameter_px)
    timings["size_s"] = time.perf_counter() - t
    raw_mask, engine, seg_timing = segment.segment(data, exclude=exclude, nm_per_px=nm_per_px,
                                                   scale=sizing.scale, **seg)
    timings.update(seg_timing)
    merge = coarse.CoarseMerge(None, 0, 0)
    at = coarse.coarse_scale(sizing.blob_diameter_px, sizing.scale, settings.target_diameter_px, size.MIN_SCALE)
    if settings.size_aware and at is not None:
        t = time.perf_counter()
        coarse_mask = segment.segment(data, exclude=exclude, nm_per_px=nm_per_px, scale=at, **seg)[0]
        if settings.neck_split > 0:    # two touching large particles merged at the coarse scale
            coarse_mask = necks.separate_at_necks(coarse_mask, settings.neck_split)
        raw_mask, candidates, replaced = coarse.merge_coarse(data, raw_mask, coarse_mask, sizing.scale,
                                                             settings.target_diameter_px, exclude)
        merge = coarse.CoarseMerge(at, candidates, replaced)
        timings["coarse_s"] = time.perf_counter() - t
    return survey, sizing, merge, raw_mask, engine


def _add_small_particles(data: np.ndarray, mask: np.ndarray, exclude: np.ndarray | None, nm_per_px: float | None,
                         survey: blobs.Blobs, sizing: size.SizeDecision, fragment_min: int, smallest: int,
                         seg: dict, size_aware: bool, timings: dict) -> tuple[np.ndarray, fine.FineAdd]:
    """A frame shrunk for its large particles, with the small ones its working scale
    could not see found by a finer pass (segment.fine)."""
    at = fine.fine_scale(sizing.scale, fragment_min, survey, mask) if size_aware else None
    if at is None:
        return mask, fine.FineAdd(None, 0, 0)
    t = time.perf_counter()
    finer = segment.segment(data, exclude=exclude, nm_per_px=nm_per_px, scale=at, **seg)[0]
    finer = measure.clean_mask(finer, smallest)
    mask, candidates, added = fine.add_fine(data, mask, finer, at, smallest, exclude)
    timings["fine_s"] = time.perf_counter() - t
    return mask, fine.FineAdd(at, candidates, added)


def _unsure(missed: blobs.CrossCheck, sizing: size.SizeDecision, particles: list[dict]) -> bool:
    """Whether a person must look at the segmentation: the blob survey saw particles the
    mask missed, or it saw particles far larger than the trained size that the engine
    asked at that size did not see, while at full resolution it found many particles
    under a third of that size (rims and fragments of large particles, or a textured
    support the survey took for particles)."""
    small = [p["ecd_px"] for p in particles]
    return missed.unsure or (sizing.reason == size.DISAGREE and len(small) >= 20
                             and float(np.median(small)) < sizing.blob_diameter_px / 3)


DECIMALS = {c.name: c.decimals for c in measure.PARTICLE_SCHEMA}


def _round(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def measure_with_edge(data: np.ndarray, mask: np.ndarray, exclude: np.ndarray | None,
                      settings: Settings, nm_per_px: float | None, min_area: int,
                      timings: dict) -> tuple[np.ndarray, np.ndarray, list[dict], dict]:
    """Label and measure the particles on the edge `settings.edge` names, touching
    particles first cut apart at their necks (measure/necks.py). With "profile"
    every particle's edge is first moved to where its thickness meets the support
    (pipeline.edge), and the mask returned (the one `--mask-out` writes) is that one, so
    ImageJ on it measures the same particles and sizes."""
    fit, grown = None, None
    if settings.neck_split > 0:
        mask = measure.clean_mask(necks.separate_at_necks(mask, settings.neck_split), min_area, fill_holes=False)
    if settings.edge == "profile":
        t = time.perf_counter()
        grown, fit = edge.profile_edge(data, mask, exclude, settings.watershed)
        mask = measure.clean_labels(grown, min_area)
        timings["edge_s"] = time.perf_counter() - t
    labels = measure.label_particles(mask, exclude, settings.exclude_border, settings.watershed)
    origin = edge.grown_from(grown, labels) if fit is not None else None
    kinds = (edge.particle_edges(origin, fit) if fit is not None
             else {int(v): "mask" for v in np.unique(labels[labels > 0])})
    profiled = {label for label, kind in kinds.items() if kind == "profile"}
    particles = measure.measure_particles(labels, data, nm_per_px, profiled)
    return mask, labels, particles, edge.edge_summary(settings.edge, fit, kinds, origin)


def analysis_record(analysis: Analysis, sample: str) -> dict:
    """The JSON object of DESIGN's `process --json` contract."""
    particles = [{k: (_round(v, DECIMALS.get(k, 4)) if isinstance(v, float) else v)
                  for k, v in p.items()} for p in analysis.particles]
    return {
        "image": analysis.image,
        "sample": sample,
        "nm_per_px": analysis.nm_per_px,
        "scale_source": analysis.scale_source,
        "scale_text": analysis.scale_text,
        "model": analysis.model,
        "engine": analysis.engine,
        "model_sha256": analysis.model_sha256,
        "particles": particles,
        "psd": {k: (_round(v) if isinstance(v, float) else v) for k, v in analysis.psd.items()},
        "flags": analysis.flags,
        "edge": analysis.checks.get("edge") or {"convention": "mask"},
        "excluded_fraction": round(analysis.excluded_fraction, 4),
        "segment_scale": round(analysis.segment_scale, 4),
        "checks": analysis.checks,
        "scale": analysis.scale_details,
        "timings_s": {k: round(v, 4) for k, v in analysis.timings.items()},
    }
