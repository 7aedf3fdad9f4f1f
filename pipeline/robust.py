"""Robust spread of pixel values, shared by the stages that set thresholds in noise units.

Why a module of its own: the segmenter's contrast unit and the scale reader's noise
measure are the same statistic, and the scale package must not import the segment
package (segment -> runtime -> int8 -> synth -> scale would be a cycle).  Written out
rather than taken from scipy.stats.median_abs_deviation: importing scipy.stats costs a
one-shot `psdwatch process` 0.5-1 s (see segment.contrast.skewness).
"""
from __future__ import annotations

import numpy as np


def robust_sigma(x: np.ndarray) -> float:
    """Gaussian-equivalent standard deviation from the median absolute deviation
    (1.4826 x MAD): outliers such as particles or glyphs hardly move it; 0.0 for no values."""
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else 0.0
