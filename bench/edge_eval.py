"""Where the edge lies: d50 error by particle shape and size band, per engine and per edge.

Two generators draw the 2048² frames, so that the project's own is not the only judge:

- "bench", a renderer of its own (not pipeline.synth, which the profile edge was tuned
  on): particles as projected solids (spheres 2 sqrt(R^2 - r^2), ellipsoids, faceted
  regular polygons with a flat top and sides sloping over the outer fifth, thin flat
  rafts), metal 3-8x brighter than the support per unit thickness, a support that is a
  power-law thickness field (thin carbon, "dark", or a thick bright oxide, "bright"), a
  probe with a Gaussian core of 0.7-1.4 px and a wide tail, Poisson counts plus read
  noise, a fifth of the particles touching a neighbour. Truth: the geometric outline.
- "synth", pipeline.synth with the same shapes (and its default flat-topped one), a
  scale bar, its own support textures and noise. Truth: its mask.

Two frames per generator, shape and support fill every cell: one of small particles
(8-32 px) and one of large ones (32-200 px), so that the size-aware segmentation's one
scale per frame is not what is tested. The segmentation runs once
per frame and engine; both edges are measured on it, as `process` would (analyse's
measure_with_edge). A cell is the d50 error of the matched particles whose true size
lies in the band (median measured over median true, a particle matched by the truth
label under its centroid); the frame's IoU and its whole d50 error come beside it. The
"check" frames are the issue's: spheres of the bench renderer, lognormal around 25, 60
and 120 px (20-165 px), and one frame log-uniform over all of 20-165 px (sizes a factor 8
apart in one frame: the coarse and fine passes of pipeline.segment), each frame's d50
error and IoU.

    .venv/bin/python bench/edge_eval.py --engines unet,classical

writes bench/edge_results.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_render import SHAPES, SUPPORTS, log_uniform_sizes, lognormal_sizes, mixed_sizes, render  # noqa: E402

from psdwatch.pipeline import analyse  # noqa: E402
from psdwatch.pipeline.settings import Settings  # noqa: E402
from psdwatch.pipeline.synth import SynthSpec, synth_image  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BANDS = ((8, 16), (16, 32), (32, 64), (64, 200))
CHECK_MEDIANS = (25, 60, 120, "20-165")   # "20-165": log-uniform over the whole range in one frame


def band_of(d: float) -> str | None:
    return next((f"{a}-{b}" for a, b in BANDS if a <= d < b or (b == 200 and a <= d <= 201)), None)


def truth_labels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label image of a truth mask (8-connected) and each label's ECD (index = label)."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return labels, np.sqrt(4 * np.bincount(labels.ravel(), minlength=n) / math.pi)


def score(analysis, truth: np.ndarray, ecd: np.ndarray) -> dict:
    """The frame's d50 error and IoU, and per size band the d50 error of the matched
    particles (a measured particle matched to the truth label under its centroid)."""
    measured = np.array([p["ecd_px"] for p in analysis.particles])
    true = ecd[1:][ecd[1:] > 0]
    pairs: dict[str, list[tuple[float, float]]] = {}
    for p in analysis.particles:
        t = truth[int(round(p["y"])), int(round(p["x"]))]
        band = band_of(ecd[t]) if t else None
        if band:
            pairs.setdefault(band, []).append((p["ecd_px"], ecd[t]))
    gt = truth > 0
    bands = {k: {"n": len(v), "d50_error_pct": round(100 * (np.median([m for m, _ in v])
                                                          / np.median([t for _, t in v]) - 1), 2)}
             for k, v in sorted(pairs.items(), key=lambda kv: int(kv[0].split("-")[0]))}
    return {"d50_error_pct": round(100 * (np.median(measured) / np.median(true) - 1), 2) if measured.size else None,
            "iou": round(float((analysis.mask & gt).sum() / max(1, (analysis.mask | gt).sum())), 3),
            "overlap": int((analysis.mask & gt).sum()), "union": int((analysis.mask | gt).sum()),
            "found": int(measured.size), "true": int(true.size), "bands": bands,
            "edge_fit": analysis.checks.get("edge")}


def both_edges(image: np.ndarray, engine: str, model, nm_per_px: float) -> dict:
    """The frame analysed at the profile edge, and the mask edge measured on the same
    segmentation: analyse's measure_with_edge is watched during the run, and called
    again on the very inputs it got (the cleaned mask, the exclusion, the smallest area)."""
    seen = {}
    measure_with_edge = analyse.measure_with_edge

    def watched(data, mask, exclude, settings, nm, min_area, timings):
        seen.update(data=data, mask=mask, exclude=exclude, nm=nm, min_area=min_area)
        return measure_with_edge(data, mask, exclude, settings, nm, min_area, timings)

    analyse.measure_with_edge = watched
    try:
        t = time.perf_counter()
        at_profile = analyse.analyse_array(image, Settings(engine=engine, edge="profile", bootstrap=0), model,
                                           nm_per_px=nm_per_px)
        seconds = time.perf_counter() - t
    finally:
        analyse.measure_with_edge = measure_with_edge
    settings = Settings(engine=engine, edge="mask", bootstrap=0)
    mask, labels, particles, info = measure_with_edge(seen["data"], seen["mask"], seen["exclude"], settings,
                                                      seen["nm"], seen["min_area"], {})
    at_mask = type(at_profile)(**{**at_profile.__dict__, "mask": mask, "labels": labels, "particles": particles,
                                  "checks": {**at_profile.checks, "edge": info}})
    return {"mask": (at_mask, seconds - at_profile.timings.get("edge_s", 0.0)), "profile": (at_profile, seconds)}


def frames(size: int, generator: str) -> list[dict]:
    """The frames of one generator: per shape and support, one of small particles and one
    of large ones."""
    shapes = SHAPES + (("flat",) if generator == "synth" else ())
    return [{"generator": generator, "shape": shape, "support": support, "mix": mix,
             "seed": 2000 + 10 * i + 2 * j + k}
            for i, shape in enumerate(shapes) for j, support in enumerate(SUPPORTS)
            for k, mix in enumerate(("small", "large"))]


def draw(frame: dict, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Image, truth labels, truth ECD per label and nm per px of one frame."""
    if frame["generator"] == "synth":
        median, spread = (14, 1.45) if frame["mix"] == "small" else (75, 1.6)
        image, mask, truth = synth_image(SynthSpec(size=size, background=frame["support"], d_median_px=median,
                                                   sigma_g=spread, coverage=0.08, shape=frame["shape"],
                                                   seed=frame["seed"]))
        labels, ecd = truth_labels(mask)
        return image, labels, ecd, truth["nm_per_px"]
    rng = np.random.default_rng(frame["seed"])
    if frame.get("median") == "20-165":
        sizes = log_uniform_sizes(rng, 20, 165, size)
    elif "median" in frame:
        sizes = lognormal_sizes(rng, frame["median"], size)
    else:
        sizes = mixed_sizes(rng, size, frame["mix"])
    image, labels = render(size, rng, frame["shape"], frame["support"], sizes)
    return image, labels, np.sqrt(4 * np.bincount(labels.ravel()) / math.pi), 1.0


def table(rows: list[dict], generator: str) -> str:
    """Markdown: shape / support down, per engine and edge the band errors and IoU."""
    combos = sorted({(r["engine"], r["edge"]) for r in rows}, key=lambda c: (c[0] != "unet", c[1] != "profile"))
    head = "| shape | support | " + " | ".join(
        f"{e}/{g} {a}-{b}" for e, g in combos for a, b in BANDS) + " | " + " | ".join(
        f"{e}/{g} IoU" for e, g in combos) + " |"
    lines = [f"### {generator}", head, "|" + "---|" * (2 + len(combos) * (len(BANDS) + 1))]
    keys = sorted({(r["shape"], r["support"]) for r in rows if r["generator"] == generator},
                  key=lambda k: (SHAPES + ("flat",)).index(k[0]) * 2 + SUPPORTS.index(k[1]))
    for shape, support in keys:
        cells, ious = [], []
        for e, g in combos:
            mine = [r for r in rows if (r["generator"], r["shape"], r["support"], r["engine"], r["edge"])
                    == (generator, shape, support, e, g)]
            for a, b in BANDS:       # the band from the frame that holds most of its particles
                held = [r["bands"][f"{a}-{b}"] for r in mine if f"{a}-{b}" in r["bands"]]
                best = max(held, key=lambda h: h["n"]) if held else None
                cells.append(f"{best['d50_error_pct']:+.1f} ({best['n']})" if best else "- (0)")
            ious.append(f"{sum(r['overlap'] for r in mine) / max(1, sum(r['union'] for r in mine)):.2f}")
        lines.append(f"| {shape} | {support} | " + " | ".join(cells) + " | " + " | ".join(ious) + " |")
    return "\n".join(lines)


def engines(names: list[str]) -> dict:
    out = {}
    for name in names:
        if name == "unet":
            from psdwatch.pipeline import runtime
            from psdwatch.pipeline.runtime.models import load_model
            live = (REPO / "models" / "LIVE").read_text().strip()
            out[name] = runtime.prepare_model(load_model(REPO / "models", live), runtime="onnxruntime",
                                              models_dir=REPO / "models")
        else:
            out[name] = None
    return out


def run_frame(frame: dict, size: int, models: dict) -> list[dict]:
    image, labels, ecd, nm_per_px = draw(frame, size)
    rows = []
    for engine, model in models.items():
        for edge, (analysis, seconds) in both_edges(image, engine, model, nm_per_px).items():
            row = {**frame, "engine": engine, "edge": edge, "seconds": round(seconds, 2),
                   **score(analysis, labels, ecd)}
            rows.append(row)
            fit = row["edge_fit"] or {}
            print(json.dumps({k: v for k, v in row.items() if k not in ("edge_fit", "bands")}
                             | {b: v["d50_error_pct"] for b, v in row["bands"].items()}
                             | {"kept": fit.get("kept_mask_why"), "blur": fit.get("blur_px")}), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--engines", default="unet,classical")
    ap.add_argument("--generators", default="bench,synth")
    ap.add_argument("--shapes", default="", help="only these shapes (default: all)")
    ap.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                    help="also the issue's sphere frames (20-165 px), U-Net only")
    ap.add_argument("--out", default=str(REPO / "bench" / "edge_results.json"))
    args = ap.parse_args()
    models = engines(args.engines.split(","))
    t0 = time.perf_counter()
    todo = [f for g in args.generators.split(",") for f in frames(args.size, g)
            if not args.shapes or f["shape"] in args.shapes.split(",")]
    rows = [r for f in todo for r in run_frame(f, args.size, models)]
    check = []
    if args.check:
        live = {k: v for k, v in models.items() if k == "unet"} or models
        check = [r for j, support in enumerate(SUPPORTS) for k, median in enumerate(CHECK_MEDIANS)
                 for r in run_frame({"generator": "bench", "shape": "sphere", "support": support,
                                     "median": median, "seed": 3000 + 10 * k + j}, args.size, live)]
    tables = [table(rows, g) for g in args.generators.split(",")]
    print("\n\n".join(tables))
    from benchmarks_page import bench_run  # bench/ is this script's folder

    Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "run": bench_run(),
                                          "size": args.size, "seconds": round(time.perf_counter() - t0),
                                          "rows": rows, "check": check, "tables": tables}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
