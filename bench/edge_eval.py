"""Where the edge lies: d50 error by particle shape and size, per engine and per edge.

The frames here are made by a renderer of their own, not pipeline.synth (which the
profile edge was tuned on): particles rendered as projected solids (spheres,
ellipsoids, faceted polygonal prisms, thin rafts), metal several times brighter than
the support per unit thickness, a support that is a power-law thickness field (thin
carbon, "dark", or a thick bright oxide, "bright"), a probe with a Gaussian core and a
wide tail, Poisson counts plus read noise, some particles touching a neighbour, 8-200
px across (lognormal around a median per frame). Truth is the geometric outline (pixel centres inside it).

    .venv/bin/python bench/edge_eval.py --size 1024 --medians 12,25,50,100 --engines classical,unet

writes bench/edge_results.json and prints the table BENCHMARKS.md quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from psdwatch.pipeline.analyse import analyse_array
from psdwatch.pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHAPES = ("sphere", "ellipsoid", "faceted", "raft")
SUPPORTS = ("dark", "bright")
SIZE_BINS = (8, 16, 32, 64, 128, 201)


def power_field(shape: tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """A random field with a 1/f^beta spectrum, scaled to [0, 1]."""
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** beta
    field = np.fft.irfft2(spec, shape)
    return (field - field.min()) / (np.ptp(field) + 1e-12)


def solid(kind: str, dx: np.ndarray, dy: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Projected thickness (px) and outline (bool) of one particle around its centre."""
    c, s = math.cos(p["angle"]), math.sin(p["angle"])
    u, v = dx * c + dy * s, -dx * s + dy * c
    if kind in ("sphere", "ellipsoid"):
        rho2 = (u / p["a"]) ** 2 + (v / p["b"]) ** 2
        return 2 * p["b"] * np.sqrt(np.clip(1 - rho2, 0, None)), rho2 <= 1
    if kind == "raft":
        r = np.hypot(u, v)
        return 0.3 * p["a"] * np.clip(p["a"] - r + 0.5, 0, 1), r <= p["a"]
    # faceted: a regular polygon outline, sides sloping over the outer fifth, flat top
    n, angle = p["sides"], np.arctan2(v, u)
    apothem = p["a"] * math.cos(math.pi / n)
    sector = (angle % (2 * math.pi / n)) - math.pi / n
    depth = apothem - np.hypot(u, v) * np.cos(sector)
    return 1.6 * p["a"] * np.clip(depth / (0.2 * p["a"]), 0, 1), depth >= 0


def place(size: int, rng: np.random.Generator, d_median: float, shape: str,
          coverage: float, touching: float) -> list[dict]:
    """Particles with lognormal diameters (sigma_g 1.3, kept within 8-200 px), none
    overlapping, a share of them placed in contact with the one before."""
    occupied = np.zeros((size, size), bool)
    out: list[dict] = []
    area, target = 0.0, coverage * size * size
    while area < target and len(out) < 5000:
        d = float(np.clip(np.exp(rng.normal(math.log(d_median), math.log(1.3))), 8, 200))
        aspect = rng.uniform(1.1, 1.6) if shape == "ellipsoid" else 1.0
        p = {"a": d / 2 * math.sqrt(aspect), "b": d / 2 / math.sqrt(aspect), "kind": shape,
             "angle": rng.uniform(0, math.pi), "sides": int(rng.integers(5, 9))}
        reach = int(p["a"]) + 3
        for attempt in range(40):
            if out and attempt < 8 and rng.random() < touching:
                prev, t = out[-1], rng.uniform(0, 2 * math.pi)
                gap = prev["a"] + p["a"] + rng.uniform(0.0, 1.0)
                p["cx"], p["cy"] = prev["cx"] + gap * math.cos(t), prev["cy"] + gap * math.sin(t)
            else:
                p["cx"], p["cy"] = rng.uniform(reach + 2, size - reach - 2, 2)
            y0, x0 = int(p["cy"]) - reach, int(p["cx"]) - reach
            if y0 < 2 or x0 < 2 or y0 + 2 * reach > size - 2 or x0 + 2 * reach > size - 2:
                continue
            own = occupied[y0:y0 + 2 * reach + 1, x0:x0 + 2 * reach + 1]
            yy, xx = np.mgrid[y0:y0 + 2 * reach + 1, x0:x0 + 2 * reach + 1]
            _, inside = solid(shape, xx - p["cx"], yy - p["cy"], p)
            if not (own & ndi.binary_dilation(inside)).any():
                own |= inside
                p["window"] = (y0, x0, 2 * reach + 1)
                out.append(p)
                area += inside.sum()
                break
    return out


def render(size: int, seed: int, shape: str, support: str, d_median: float = 30,
           touching: float = 0.2) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """One frame: the 16-bit image, the truth label image and each particle's true ECD (px)."""
    rng = np.random.default_rng(seed)
    particles = place(size, rng, d_median, shape, 0.10, touching)
    metal = np.zeros((size, size))
    truth = np.zeros((size, size), np.int32)
    ecd = []
    for i, p in enumerate(particles, 1):
        y0, x0, w = p["window"]
        yy, xx = np.mgrid[y0:y0 + w, x0:x0 + w]
        t, inside = solid(shape, xx - p["cx"], yy - p["cy"], p)
        metal[y0:y0 + w, x0:x0 + w] += t
        truth[y0:y0 + w, x0:x0 + w][inside] = i
        ecd.append(math.sqrt(4 * inside.sum() / math.pi))
    z = rng.uniform(3, 8)                                   # metal / support per unit thickness
    base = rng.uniform(4, 15) if support == "dark" else rng.uniform(60, 200)
    thick = base * (0.4 + power_field((size, size), 1.6, rng))
    signal = metal + thick / z
    sigma = rng.uniform(0.7, 1.4)
    signal = 0.85 * ndi.gaussian_filter(signal, sigma) + 0.15 * ndi.gaussian_filter(signal, 3.5 * sigma)
    dose = rng.uniform(1.0, 6.0)
    counts = rng.poisson(signal * dose) + rng.normal(0, 2.0, signal.shape)
    image = np.clip(counts * (50000 / np.percentile(counts, 99.99)) + 500, 0, 65535).astype(np.uint16)
    return image, truth, ecd


def score(analysis, truth: np.ndarray, ecd: list[float]) -> dict:
    """d50 error against all true particles, IoU, and per-particle ratios (measured /
    true ECD) by true size, for particles matched by the truth label at their centroid."""
    true = np.array(ecd)
    measured = np.array([p["ecd_px"] for p in analysis.particles])
    at = [truth[int(round(p["y"])), int(round(p["x"]))] for p in analysis.particles]
    ratios: dict[str, list[float]] = {}
    for m, t in zip(measured, at):
        if t:
            d = true[t - 1]
            k = next(f"{a}-{b}" for a, b in zip(SIZE_BINS, SIZE_BINS[1:]) if d < b)
            ratios.setdefault(k, []).append(m / d)
    gt = truth > 0
    every = [r for v in ratios.values() for r in v]
    return {"median_ratio": round(float(np.median(every)), 3) if every else None,
            "d50_error_pct": round(100 * (np.median(measured) / np.median(true) - 1), 2) if measured.size else None,
            "iou": round(float((analysis.mask & gt).sum() / max(1, (analysis.mask | gt).sum())), 3),
            "found": int(measured.size), "true": int(true.size),
            "median_ratio_by_size": {k: round(float(np.median(v)), 3) for k, v in sorted(ratios.items())},
            "edge_fit": analysis.checks.get("edge")}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--medians", default="12,25,50,100", help="median diameters (px), a frame each")
    ap.add_argument("--engines", default="classical")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--out", default=str(REPO / "bench" / "edge_results.json"))
    args = ap.parse_args()
    models = engines(args.engines.split(","))
    rows = []
    for shape in args.shapes.split(","):
        for support in SUPPORTS:
            for k, d_median in enumerate(float(m) for m in args.medians.split(",")):
                image, truth, ecd = render(args.size, 1000 + 17 * k + SUPPORTS.index(support),
                                           shape, support, d_median)
                for engine, model in models.items():
                    for edge in ("mask", "profile"):
                        t = time.perf_counter()
                        a = analyse_array(image, Settings(engine=engine, edge=edge, bootstrap=0), model,
                                          nm_per_px=1.0)
                        row = {"shape": shape, "support": support, "d_median_px": d_median, "engine": engine,
                               "edge": edge, "seconds": round(time.perf_counter() - t, 2),
                               **score(a, truth, ecd)}
                        rows.append(row)
                        print(json.dumps({k2: v for k2, v in row.items() if k2 != "edge_fit"} |
                                         {"kept": (row["edge_fit"] or {}).get("kept_mask_why"),
                                          "blur": (row["edge_fit"] or {}).get("blur_px")}), flush=True)
    Path(args.out).write_text(json.dumps({"size": args.size, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
