"""Synthetic HAADF images with exact truth, for tests, benchmarks and training.

The physics is kept simple but in the right direction: HAADF intensity grows
with projected thickness (and Z), so a particle is a bright dome over a support
whose own thickness varies at several length scales; the probe blurs; counting
gives shot noise; the scan adds line-to-line jitter. Particles never overlap
and stay clear of the border and of the scale bar, so every one is measurable
and the truth PSD is the PSD a perfect measurement would give.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
from scipy import ndimage as ndi

from .scale.draw import STYLES, draw_scale_bar


BACKGROUNDS = ("textured", "dark", "bright")
# Particle shapes, by their projected thickness: "flat" (the default: a sphere's rim
# clipped at half its height, flat-topped as faceted crystals look), "sphere" (round,
# 2 sqrt(R^2 - r^2)), "ellipsoid" (the same, elongated up to 1.35), "faceted" (straight
# sloped sides over the outer quarter of the radius, then a flat top) and "raft" (thin
# and flat, sides over the outer 6 %, a third as thick as it is wide).
SHAPES = ("flat", "sphere", "ellipsoid", "faceted", "raft")


@dataclass
class SynthSpec:
    size: int = 1024
    bits: int = 16
    style: str = "band"
    font: str | None = None
    nm_per_px: float | None = None      # None: drawn at random
    d_median_nm: float | None = None    # None: drawn at random
    sigma_g: float = 1.3
    coverage: float = 0.04              # particle area fraction, as in the study
    seed: int = 0
    # "textured": Pt on alumina, as the study's patches; "dark": particles on thin
    # carbon, most pixels near black and the cores saturated; "bright": a thick
    # oxide support nearly as bright as the particles, with strong texture.
    background: str = "textured"
    d_median_px: float | None = None    # set the magnification directly (overrides d_median_nm)
    shape: str = "flat"                 # one of SHAPES, or "mixed": each particle one of them


def _field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth Gaussian noise of correlation length sigma, unit variance. Wide
    fields are made small and enlarged: a sigma-170 filter on 2048² would take
    a minute, the enlarged field looks the same."""
    factor = max(1, int(sigma // 4))
    pad = 2 if factor > 1 else 0
    small = (-(-shape[0] // factor) + pad, -(-shape[1] // factor) + pad)
    field = ndi.gaussian_filter(rng.standard_normal(small).astype(np.float32), sigma / factor)
    if factor > 1:
        field = cv2.resize(field, (small[1] * factor, small[0] * factor), interpolation=cv2.INTER_CUBIC)
        field = field[factor:factor + shape[0], factor:factor + shape[1]]
    return field / (field.std() + 1e-9)


def support_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Projected support thickness in [0, 1]: grains at several scales, pores, and
    (on some images) vacuum where the support ends, as in real Pt/alumina."""
    h, w = shape
    out = sum(weight * _field(shape, sigma, rng)
              for sigma, weight in ((1.5, 0.15), (6, 0.35), (25, 0.35), (max(h, w) / 12, 0.4)))
    out = (out - out.min()) / (np.ptp(out) + 1e-9)
    out = np.clip(out * 1.4 - 0.2, 0.0, 1.0)
    pores = np.clip(_field(shape, rng.uniform(4, 10), rng) - 1.6, 0, None)
    out *= np.clip(1.0 - rng.uniform(0.0, 0.8) * pores, 0.0, 1.0)
    if rng.random() < 0.5:  # the support's edge, with vacuum beyond it
        edge = _field(shape, max(h, w) / 10, rng) - rng.uniform(-1.2, 0.3)
        out *= np.clip(edge * 4.0 + 0.5, 0.0, 1.0)
    return out


def place_particles(shape: tuple[int, int], diameters_px: np.ndarray, rng: np.random.Generator,
                    keep_out: list[tuple[int, int, int, int]], margin: int = 4,
                    blocked: np.ndarray | None = None) -> list[dict]:
    """Non-overlapping ellipses, clear of the border, the keep-out boxes and the
    blocked pixels (vacuum: metal sits on the support)."""
    h, w = shape
    occupied = np.zeros(shape, bool) if blocked is None else blocked.copy()
    for x0, y0, x1, y1 in keep_out:
        occupied[max(0, y0 - margin):y1 + margin + 1, max(0, x0 - margin):x1 + margin + 1] = True
    placed = []
    for d in sorted(diameters_px, reverse=True):
        aspect = rng.uniform(1.0, 1.35)
        a, b = d / 2 * math.sqrt(aspect), d / 2 / math.sqrt(aspect)
        reach = int(math.ceil(a)) + margin
        for _ in range(60):
            cx, cy = rng.uniform(reach + 1, w - reach - 2), rng.uniform(reach + 1, h - reach - 2)
            ys, xs = slice(int(cy) - reach, int(cy) + reach + 1), slice(int(cx) - reach, int(cx) + reach + 1)
            if not occupied[ys, xs].any():
                occupied[ys, xs] = True
                placed.append({"cx": cx, "cy": cy, "a": a, "b": b, "angle": rng.uniform(0, math.pi)})
                break
    return placed


def particle_thickness(rho2: np.ndarray, kind: str) -> np.ndarray:
    """Projected thickness in units of the particle's width (2 b) at rho2 = (r / R)^2."""
    rim = np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
    if kind == "flat":
        # A faceted crystal rather than a sphere: thickness rises like a sphere's
        # at the edge, then levels off on the facets (real particles look flat-topped).
        return np.clip(rim / 0.5, 0.0, 1.0)
    if kind in ("sphere", "ellipsoid"):
        return rim
    ramp = 0.25 if kind == "faceted" else 0.06
    top = 1.0 if kind == "faceted" else 1 / 3
    return np.clip((1.0 - np.sqrt(np.clip(rho2, 0.0, None))) / ramp, 0.0, 1.0) * top


def assign_shapes(particles: list[dict], shape: str, rng: np.random.Generator) -> None:
    """Each particle's shape; a sphere is round. The default ("flat") draws nothing,
    so default frames stay what they were."""
    if shape == "flat":
        return
    if shape != "mixed" and shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)} or mixed")
    for p in particles:
        p["shape"] = str(rng.choice(SHAPES)) if shape == "mixed" else shape
        if p["shape"] == "sphere":
            p["a"] = p["b"] = math.sqrt(p["a"] * p["b"])


def render_particles(shape: tuple[int, int], particles: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Projected thickness of each particle and the truth mask (pixel centres
    inside the ellipse)."""
    thickness = np.zeros(shape, np.float32)
    mask = np.zeros(shape, bool)
    for p in particles:
        r = int(math.ceil(p["a"])) + 1
        x0, y0 = int(p["cx"]) - r, int(p["cy"]) - r
        yy, xx = np.mgrid[y0:y0 + 2 * r + 2, x0:x0 + 2 * r + 2].astype(np.float32)
        dx, dy = xx - p["cx"], yy - p["cy"]
        c, s = math.cos(p["angle"]), math.sin(p["angle"])
        u, v = (dx * c + dy * s) / p["a"], (-dx * s + dy * c) / p["b"]
        rho2 = u * u + v * v
        inside = rho2 <= 1.0
        dome = particle_thickness(rho2, p.get("shape", "flat")) * (2 * p["b"])
        window = (slice(y0, y0 + 2 * r + 2), slice(x0, x0 + 2 * r + 2))
        thickness[window] += dome
        mask[window] |= inside
    return thickness, mask


def to_counts(signal: np.ndarray, bits: int, rng: np.random.Generator,
              saturate: bool = False) -> np.ndarray:
    """Shot noise, scan-line jitter and the detector's gain/offset to an integer image.

    saturate: the gain of a frame exposed for a weak support, so that the
    vacuum/carbon sits at black and particle cores clip at white."""
    dose = rng.uniform(8, 60)
    counts = rng.poisson(np.clip(signal, 0, None) * dose).astype(np.float32) / dose
    counts += rng.normal(0, rng.uniform(0.005, 0.03), size=(signal.shape[0], 1)).astype(np.float32)
    counts = ndi.gaussian_filter1d(counts, rng.uniform(0.3, 0.8), axis=1)
    top = 255 if bits == 8 else 65535
    lo, hi = np.percentile(counts, (0.05, 99.95))
    # Some frames are exposed so that the particles saturate, as real ones often do.
    gain = rng.uniform(0.75, 1.3) * top / (hi - lo + 1e-9)
    offset = rng.uniform(0.02, 0.08) * top
    if saturate:
        lo = np.percentile(counts, 50)
        gain, offset = rng.uniform(1.3, 2.0) * top / (hi - lo + 1e-9), 0.0
    out = np.clip((counts - lo) * gain + offset, 0, top)
    return out.astype(np.uint8 if bits == 8 else np.uint16)


def synth_image(spec: SynthSpec) -> tuple[np.ndarray, np.ndarray, dict]:
    """One image, its truth mask and truth dict (nm_per_px, each particle's ecd_nm)."""
    rng = np.random.default_rng(spec.seed)
    shape = (spec.size, spec.size)
    nm_per_px = spec.nm_per_px or float(rng.uniform(0.08, 0.6))
    d_median_nm = spec.d_median_nm or float(rng.uniform(12, 28) * nm_per_px)
    if spec.d_median_px:
        d_median_nm = spec.d_median_px * nm_per_px
    if spec.background not in BACKGROUNDS:
        raise ValueError(f"unknown background {spec.background!r}; use one of {', '.join(BACKGROUNDS)}")
    # The bar is drawn twice from the same seed: once on a blank frame to learn
    # where it goes (so particles avoid it), once on the finished image.
    bar_seed = int(rng.integers(1 << 31))
    blank = np.zeros(shape, np.uint8 if spec.bits == 8 else np.uint16)
    _, bar_truth = draw_scale_bar(blank, nm_per_px, spec.style, np.random.default_rng(bar_seed), spec.font)
    x0, y0, x1, y1 = bar_truth["annotation_bbox"]
    keep_out = [(x0, y0, x1, y1)] if y0 < spec.size else []
    mean_area_nm2 = math.pi / 4 * d_median_nm ** 2 * math.exp(2 * math.log(spec.sigma_g) ** 2)
    n = int(spec.coverage * spec.size ** 2 * nm_per_px ** 2 / mean_area_nm2)
    diameters_px = np.exp(rng.normal(math.log(d_median_nm), math.log(spec.sigma_g), n)) / nm_per_px
    # Below ~6 px a diameter cannot be measured to a few percent (pixelation alone
    # moves it by 10 %): microscopists choose the magnification so particles are larger.
    smallest = 6 if spec.d_median_px is None else min(6, 0.5 * spec.d_median_px)
    diameters_px = diameters_px[(diameters_px >= smallest) & (diameters_px <= spec.size / 8)]
    support = support_texture(shape, rng)
    blocked = support < 0.08 if spec.background != "dark" else None
    particles = place_particles(shape, diameters_px, rng, keep_out, blocked=blocked)
    assign_shapes(particles, spec.shape, rng)
    thickness, mask = render_particles(shape, particles)
    # Pt against alumina per unit thickness: Z^1.7 makes the metal several times
    # brighter than the same thickness of support.
    d_px = max(d_median_nm / nm_per_px, 1.0)
    if spec.background == "textured":
        z_contrast = rng.uniform(2.0, 5.0)
        support_weight = rng.uniform(0.2, 0.5)  # how much the support's texture shows
        signal = 0.15 + support_weight * support + z_contrast * thickness / d_px * 0.35
    elif spec.background == "dark":
        signal = 0.01 + rng.uniform(0.0, 0.06) * support + rng.uniform(1.5, 3.0) * thickness / d_px
    else:
        signal = 0.3 + rng.uniform(0.5, 0.9) * support + rng.uniform(0.35, 0.8) * thickness / d_px
    signal = ndi.gaussian_filter(signal, rng.uniform(0.5, 1.1) * (max(1.0, d_px / 25) if spec.d_median_px else 1.0))  # the probe
    image = to_counts(signal, spec.bits, rng, saturate=spec.background == "dark")
    image, bar_truth = draw_scale_bar(image, nm_per_px, spec.style, np.random.default_rng(bar_seed), spec.font)
    if image.shape != mask.shape:  # a databar added rows below the frame
        mask = np.pad(mask, ((0, image.shape[0] - mask.shape[0]), (0, image.shape[1] - mask.shape[1])))
    truth = {
        "nm_per_px": nm_per_px,
        "bits": spec.bits,
        "style": spec.style,
        "seed": spec.seed,
        "scale_bar": bar_truth,
        "shape": spec.shape,
        "particles": [{"x": round(p["cx"], 2), "y": round(p["cy"], 2),
                       "ecd_nm": 2 * math.sqrt(p["a"] * p["b"]) * nm_per_px,
                       "shape": p.get("shape", "flat")} for p in particles],
    }
    return image, mask, truth


def write_example(outdir: Path, stem: str, image: np.ndarray, mask: np.ndarray, truth: dict) -> Path:
    """The DESIGN truth format: <stem>.tif, <stem>_mask.png, <stem>.json."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(outdir / f"{stem}.tif", image)
    cv2.imwrite(str(outdir / f"{stem}_mask.png"), mask.astype(np.uint8) * 255)
    (outdir / f"{stem}.json").write_text(json.dumps(truth, indent=1, default=_jsonable))
    return outdir / f"{stem}.tif"


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def synth_set(outdir: Path, count: int, size: int = 1024, seed: int = 0,
              styles: tuple[str, ...] = STYLES, bits: tuple[int, ...] = (8, 16)) -> list[Path]:
    """A set cycling through every bar style and bit depth, reproducible by seed."""
    paths = []
    for i in range(count):
        spec = SynthSpec(size=size, bits=bits[i % len(bits)], style=styles[i % len(styles)],
                         seed=seed * 100003 + i)
        image, mask, truth = synth_image(spec)
        paths.append(write_example(outdir, f"synth_{seed:03d}_{i:04d}", image, mask, truth))
    return paths
