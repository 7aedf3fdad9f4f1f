"""Placeholder until the measured classical engine lands (same API)."""
from __future__ import annotations
import numpy as np
from skimage import filters, morphology


def segment_classical(image: np.ndarray, nm_per_px: float | None = None,
                      exclude: np.ndarray | None = None, **params) -> np.ndarray:
    f = image.astype(np.float32)
    th = morphology.white_tophat(f, morphology.disk(12))
    mask = th > filters.threshold_yen(th)
    if exclude is not None:
        mask &= ~exclude
    return mask
