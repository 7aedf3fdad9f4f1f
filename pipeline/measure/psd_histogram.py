"""A sample's PSD kept as a fine log-size histogram, so that it can be merged.

A sample may gather hundreds of thousands of images; re-reading and sorting all
its particles after every new image costs more the bigger it grows. A histogram
of ln(d) in bins 0.1 % wide, holding per bin the count *and the sum* of the
diameters, can instead be added to (a new image) and subtracted from (an image
measured again) at a cost that depends on one image only. The bin's mean stands
for its particles: where a bin holds one distinct diameter (the usual case: two
particle areas of A and A + 1 px differ by 1/(2A) in d, more than a bin for A
below 500 px) the percentiles are exactly those of the particles; otherwise off
by at most a bin (0.1 %). n, mean, std and the lognormal fit come from kept sums
and are exact.

The figures follow pipeline.psd.summarise_sample for large samples (the d50
interval from order statistics), which is what that function does above
MAX_BOOTSTRAP_DRAWS; smaller samples are summarised from their particles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LN_STEP = 1e-3                   # bin width in ln(d): 0.1 %
LN_MIN = math.log(1e-4)          # 0.1 pm ... 10 mm, in nm or px: every size a frame can hold
N_BINS = int(math.ceil((math.log(1e7) - LN_MIN) / LN_STEP))
_RECORD = np.dtype([("bin", "<i4"), ("count", "<i8"), ("total", "<f8")])
_SUMS = np.dtype([("s1", "<f8"), ("s2", "<f8"), ("l1", "<f8"), ("l2", "<f8")])


def _positive(values) -> np.ndarray:
    d = np.asarray(values, dtype=float).ravel()
    return d[np.isfinite(d) & (d > 0)]


@dataclass
class SizeHistogram:
    """Counts and diameter sums per occupied ln(d) bin (sorted), plus the sums
    of d, d^2, ln d and (ln d)^2 over every particle."""
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    totals: np.ndarray = field(default_factory=lambda: np.zeros(0, float))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(4, float))  # s1, s2, l1, l2

    @classmethod
    def of(cls, values) -> "SizeHistogram":
        """The histogram of these diameters (non-finite and non-positive ones left out)."""
        d = _positive(values)
        if d.size == 0:
            return cls()
        logs = np.log(d)
        index = np.clip(np.floor((logs - LN_MIN) / LN_STEP), 0, N_BINS - 1).astype(np.int64)
        bins, inverse = np.unique(index, return_inverse=True)
        counts = np.bincount(inverse).astype(np.int64)
        totals = np.bincount(inverse, weights=d)
        sums = np.array([d.sum(), (d * d).sum(), logs.sum(), (logs * logs).sum()])
        return cls(bins, counts, totals, sums)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def combined(self, other: "SizeHistogram", sign: int = 1) -> "SizeHistogram":
        """This histogram plus (sign 1) or minus (sign -1) another: the cost of
        the two occupied-bin lists, never of the particles."""
        bins = np.concatenate([self.bins, other.bins])
        if bins.size == 0:
            return SizeHistogram(sums=self.sums + sign * other.sums)
        keys, inverse = np.unique(bins, return_inverse=True)
        counts = np.bincount(inverse, np.concatenate([self.counts, sign * other.counts]),
                             minlength=keys.size).round().astype(np.int64)
        totals = np.bincount(inverse, np.concatenate([self.totals, sign * other.totals]), minlength=keys.size)
        if (counts < 0).any():
            raise ValueError("subtracting particles that the histogram does not hold")
        keep = counts > 0
        sums = self.sums + sign * other.sums
        if not keep.any():
            sums = np.zeros(4)
        return SizeHistogram(keys[keep], counts[keep], totals[keep], sums)

    # ------------------------------------------------------------------ storage

    def to_bytes(self) -> bytes:
        records = np.empty(self.bins.size, _RECORD)
        records["bin"], records["count"], records["total"] = self.bins, self.counts, self.totals
        return np.asarray(self.sums, "<f8").tobytes() + records.tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> "SizeHistogram":
        if not blob:
            return cls()
        sums = np.frombuffer(blob[:_SUMS.itemsize], "<f8").astype(float)
        records = np.frombuffer(blob[_SUMS.itemsize:], _RECORD)
        return cls(records["bin"].astype(np.int64), records["count"].astype(np.int64),
                   records["total"].astype(float), sums)

    # ------------------------------------------------------------------ reading

    @property
    def values(self) -> np.ndarray:
        """The diameter standing for each occupied bin: the mean of its particles."""
        return self.totals / np.maximum(self.counts, 1)

    def at_rank(self, ranks) -> np.ndarray:
        """The value of the particles at these 0-based ranks in size order."""
        ends = np.cumsum(self.counts)
        where = np.searchsorted(ends, np.asarray(ranks, dtype=np.int64), side="right")
        return self.values[np.minimum(where, self.bins.size - 1)]

    def percentile(self, q) -> np.ndarray:
        """As numpy's default (linear) percentile of the particles."""
        h = (self.n - 1) * np.asarray(q, float) / 100.0
        lo = np.floor(h).astype(np.int64)
        below, above = self.at_rank(lo), self.at_rank(np.minimum(lo + 1, self.n - 1))
        return below + (h - lo) * (above - below)

    def quantile(self, p) -> np.ndarray:
        return self.percentile(np.asarray(p, float) * 100.0)

    def max(self) -> float:
        return float(self.values[-1])

    def count_outside(self, lo: float, hi: float) -> int:
        v = self.values
        return int(self.counts[(v > hi) | (v < lo)].sum())

    def histogram(self, edges: np.ndarray) -> np.ndarray:
        """Particles per plot bin, each fine bin counted at its mean."""
        counts, _ = np.histogram(self.values, edges, weights=self.counts)
        return counts.round().astype(np.int64)

    def up_to(self, hi: float) -> "SizeHistogram":
        """The bins whose particles are at most `hi` (for percentiles only: no sums)."""
        keep = self.values <= hi
        return SizeHistogram(self.bins[keep], self.counts[keep], self.totals[keep])

    def expanded(self) -> np.ndarray:
        """Every particle as its bin's value, in size order (small samples only)."""
        return np.repeat(self.values, self.counts)


def summarise_histogram(h: SizeHistogram, unit: str) -> dict:
    """n, d10, d50, d90, mean, std, the d50 interval from order statistics and the
    lognormal fit: pipeline.psd.summarise_sample's figures for a large sample."""
    n = h.n
    empty = {"n": 0, "unit": unit, "d10": None, "d50": None, "d90": None, "mean": None, "std": None,
             "d50_ci95": None, "lognormal_median": None, "lognormal_sigma_g": None, "ci_method": None}
    if n == 0:
        return empty
    s1, s2, l1, l2 = (float(v) for v in h.sums)
    d10, d50, d90 = (float(v) for v in h.percentile([10, 50, 90]))
    mean, log_mean = s1 / n, l1 / n
    out = {"n": n, "unit": unit, "d10": d10, "d50": d50, "d90": d90, "mean": mean,
           "std": math.sqrt(max(0.0, (s2 - n * mean * mean) / (n - 1))) if n > 1 else 0.0,
           "lognormal_median": math.exp(log_mean),
           "lognormal_sigma_g": math.exp(math.sqrt(max(0.0, (l2 - n * log_mean ** 2) / (n - 1)))) if n > 1 else 1.0}
    half = 1.959964 * math.sqrt(n) / 2  # binomial(n, 1/2) ranks around the median
    lo_rank, hi_rank = max(1, math.floor(n / 2 - half)), min(n, math.ceil(n / 2 + half) + 1)
    lo, hi = h.at_rank([lo_rank - 1, hi_rank - 1])
    out["d50_ci95"] = [float(lo), float(hi)] if n > 1 else None
    out["ci_method"] = "order statistics (distribution-free)" if n > 1 else None
    return out
