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


def _lognormal(median: float, sigma_g: float):
    # Imported here: only the report's plots draw the fit, and scipy.stats costs a
    # one-shot `psdwatch process` half a second of imports it never uses.
    from scipy import stats

    return stats.lognorm(s=math.log(sigma_g) if sigma_g > 1 else 1e-6, scale=median)


def lognormal_pdf(d: np.ndarray, median: float, sigma_g: float) -> np.ndarray:
    """Number density of the fitted lognormal, for drawing the fit over a histogram."""
    return _lognormal(median, sigma_g).pdf(np.asarray(d, float))


def lognormal_cdf(d: np.ndarray, median: float, sigma_g: float) -> np.ndarray:
    """Cumulative share of the fitted lognormal, for the cumulative plot."""
    return _lognormal(median, sigma_g).cdf(np.asarray(d, float))


# Bootstrapping the d50 interval costs bootstrap x n draws; above this many the
# distribution-free order-statistic interval is used, which at such n agrees
# with the bootstrap and costs one sort, not hundreds of MB.
MAX_BOOTSTRAP_DRAWS = 4_000_000


def summarise_sample(diameters: np.ndarray | list[float], unit: str, bootstrap: int = 1000) -> dict:
    """summarise() for a whole sample, which may hold 10^5 particles: the d50
    interval comes from order statistics when a bootstrap would need more than
    MAX_BOOTSTRAP_DRAWS draws (10^5 x 1000 resamples is 800 MB). `ci_method`
    says which one was used."""
    d = np.asarray(diameters, float)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size * bootstrap <= MAX_BOOTSTRAP_DRAWS:
        out = summarise(d, unit, bootstrap)
        out["ci_method"] = f"bootstrap, {bootstrap} resamples" if out["d50_ci95"] else None
        return out
    out = summarise(d, unit, bootstrap=0)
    s = np.sort(d)
    n = s.size
    half = 1.959964 * math.sqrt(n) / 2  # binomial(n, 1/2) ranks around the median
    lo_rank, hi_rank = max(1, math.floor(n / 2 - half)), min(n, math.ceil(n / 2 + half) + 1)
    out["d50_ci95"] = [float(s[lo_rank - 1]), float(s[hi_rank - 1])]
    out["ci_method"] = "order statistics (distribution-free)"
    return out


def psd_flags(summary: dict, min_particles: int) -> list[str]:
    """Quality warnings a person must see next to the numbers."""
    flags = []
    if summary["n"] == 0:
        flags.append("no_particles")
    elif summary["n"] < min_particles:
        flags.append("few_particles")
    return flags
