"""An independent renderer of HAADF frames for bench/edge_eval.py (not pipeline.synth,
which the profile edge was tuned on): particles as projected solids over a power-law
support, a probe with a Gaussian core and a wide tail, Poisson counts plus read noise.

Shapes, by their projected thickness t and their outline (the truth):
- sphere: t = 2 sqrt(R^2 - r^2), a circle;
- ellipsoid: the same with axes a > b (aspect 1.1-1.6), an ellipse;
- faceted: a regular polygon (5-8 sides) with a flat top 1.6x its circumradius thick
  and sides that slope over the outer fifth of the circumradius, the polygon;
- raft: a thin flat disc, a third as thick as it is wide, its sides over the outer 6 %.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

SHAPES = ("sphere", "ellipsoid", "faceted", "raft")
SUPPORTS = ("dark", "bright")
# Particles per 2048² frame in each size band (px), log-uniform within it: a frame of
# small particles and one of large ones (a frame spanning 8-200 px would test the
# size-aware segmentation's one scale per frame, not the edge).
MIXES = {"small": ((8, 16, 600), (16, 32, 250)), "large": ((32, 64, 80), (64, 200, 30))}


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
        depth = p["a"] - np.hypot(u, v)
        return 0.3 * p["a"] * np.clip(depth / (0.06 * p["a"]), 0, 1), depth >= 0
    n, angle = p["sides"], np.arctan2(v, u)
    apothem = p["a"] * math.cos(math.pi / n)
    sector = (angle % (2 * math.pi / n)) - math.pi / n
    depth = apothem - np.hypot(u, v) * np.cos(sector)
    return 1.6 * p["a"] * np.clip(depth / (0.2 * p["a"]), 0, 1), depth >= 0


def mixed_sizes(rng: np.random.Generator, size: int, mix: str) -> np.ndarray:
    """Diameters (px) of MIXES[mix], log-uniform within each band, scaled to the frame's area."""
    scale = (size / 2048) ** 2
    return np.concatenate([np.exp(rng.uniform(math.log(a), math.log(b), max(2, round(k * scale))))
                           for a, b, k in MIXES[mix]])


def lognormal_sizes(rng: np.random.Generator, median: float, size: int, coverage: float = 0.10) -> np.ndarray:
    """Diameters (px) lognormal around `median` (sigma_g 1.3) within 20-165 px, enough to
    cover `coverage` of the frame."""
    d = np.clip(np.exp(rng.normal(math.log(median), math.log(1.3), 6000)), 20, 165)
    n = int(np.searchsorted(np.cumsum(math.pi / 4 * d * d), coverage * size * size)) + 1
    return d[:n]


def log_uniform_sizes(rng: np.random.Generator, lo: float, hi: float, size: int,
                      coverage: float = 0.10) -> np.ndarray:
    """Diameters (px) log-uniform in lo-hi, enough to cover `coverage` of the frame: one
    frame that mixes particles a factor 8 apart in size."""
    d = np.exp(rng.uniform(math.log(lo), math.log(hi), 6000))
    n = int(np.searchsorted(np.cumsum(math.pi / 4 * d * d), coverage * size * size)) + 1
    return d[:n]


def place(size: int, rng: np.random.Generator, diameters: np.ndarray, shape: str,
          touching: float = 0.2) -> list[dict]:
    """Particles of the given diameters, largest first, none overlapping, a share of
    them in contact with the one placed before."""
    occupied = np.zeros((size, size), bool)
    out: list[dict] = []
    for d in sorted(diameters, reverse=True):
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
                break
    return out


def render(size: int, rng: np.random.Generator, shape: str, support: str,
           diameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame: the 16-bit image and the truth label image (pixel centres inside each
    particle's outline)."""
    particles = place(size, rng, diameters, shape)
    metal = np.zeros((size, size))
    truth = np.zeros((size, size), np.int32)
    for i, p in enumerate(particles, 1):
        y0, x0, w = p["window"]
        yy, xx = np.mgrid[y0:y0 + w, x0:x0 + w]
        t, inside = solid(shape, xx - p["cx"], yy - p["cy"], p)
        metal[y0:y0 + w, x0:x0 + w] += t
        truth[y0:y0 + w, x0:x0 + w][inside] = i
    z = rng.uniform(3, 8)                                   # metal / support per unit thickness
    base = rng.uniform(4, 15) if support == "dark" else rng.uniform(60, 200)
    thick = base * (0.4 + power_field((size, size), 1.6, rng))
    signal = metal + thick / z
    sigma = rng.uniform(0.7, 1.4)
    signal = 0.85 * ndi.gaussian_filter(signal, sigma) + 0.15 * ndi.gaussian_filter(signal, 3.5 * sigma)
    dose = rng.uniform(1.0, 6.0)
    counts = rng.poisson(signal * dose) + rng.normal(0, 2.0, signal.shape)
    image = np.clip(counts * (50000 / np.percentile(counts, 99.99)) + 500, 0, 65535).astype(np.uint16)
    return image, truth
