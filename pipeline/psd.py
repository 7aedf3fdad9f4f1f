"""PSD: the number distribution of equivalent diameters.

d10/d50/d90 are number-weighted percentiles, as the study reports them. A
bootstrap interval on d50 and a lognormal fit say how much to trust them; a
small count is flagged because a d50 from a dozen particles moves a lot from
one image to the next.
"""

from __future__ import annotations

import math

import numpy as np


def _empty(unit: str) -> dict:
    return {"n": 0, "unit": unit, "d10": None, "d50": None, "d90": None, "mean": None,
            "std": None, "d50_ci95": None, "lognormal_median": None, "lognormal_sigma_g": None}


def summarise(diameters: np.ndarray | list[float], unit: str = "nm", bootstrap: int = 1000,
              seed: int = 0) -> dict:
    """n, d10, d50, d90, mean, std, the bootstrap 95 % interval of d50, and the
    lognormal maximum-likelihood fit (median and geometric standard deviation).

    The bootstrap is seeded so the same particles always give the same report.
    """
    d = np.asarray(diameters, dtype=float)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        return _empty(unit)
    d10, d50, d90 = (float(v) for v in np.percentile(d, (10, 50, 90)))
    out = {"n": int(d.size), "unit": unit, "d10": d10, "d50": d50, "d90": d90,
           "mean": float(d.mean()), "std": float(d.std(ddof=1)) if d.size > 1 else 0.0}
    if d.size > 1 and bootstrap > 0:
        rng = np.random.default_rng(seed)
        medians = np.median(rng.choice(d, size=(bootstrap, d.size), replace=True), axis=1)
        lo, hi = np.percentile(medians, (2.5, 97.5))
        out["d50_ci95"] = [float(lo), float(hi)]
    else:
        out["d50_ci95"] = None
    logs = np.log(d)
    out["lognormal_median"] = float(math.exp(logs.mean()))
    out["lognormal_sigma_g"] = float(math.exp(logs.std(ddof=1))) if d.size > 1 else 1.0
    return out


def lognormal_pdf(d: np.ndarray, median: float, sigma_g: float) -> np.ndarray:
    """Number density of the fitted lognormal, for drawing the fit over a histogram."""
    s = math.log(sigma_g) if sigma_g > 1 else 1e-6
    d = np.asarray(d, float)
    return np.exp(-(np.log(d / median) ** 2) / (2 * s * s)) / (d * s * math.sqrt(2 * math.pi))


def psd_flags(summary: dict, min_particles: int) -> list[str]:
    """Quality warnings a person must see next to the numbers."""
    flags = []
    if summary["n"] == 0:
        flags.append("no_particles")
    elif summary["n"] < min_particles:
        flags.append("few_particles")
    return flags
