"""Segmentation scores the study uses: IoU, PPV (precision) and NPV.

Particles are a few percent of the pixels, so accuracy is never reported: a
mask of all background would score 99 %. Counts are summed over a whole set
before dividing, so an empty patch neither helps nor breaks the score.
"""

from __future__ import annotations

import numpy as np


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[tp, fp, fn, tn] pixel counts of two masks of the same shape."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return np.array([tp, fp, fn, pred.size - tp - fp - fn], np.int64)


def scores(counts: np.ndarray) -> dict[str, float]:
    """IoU, PPV and NPV from summed confusion counts (1.0 where undefined and nothing was wrong)."""
    tp, fp, fn, tn = (int(c) for c in counts)
    ratio = lambda num, den: num / den if den else 1.0  # noqa: E731
    return {"iou": ratio(tp, tp + fp + fn), "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn)}
