"""Binary image: which pixels are metal particle.

Two engines. "unet" is the study's method: the U-Net, which pipeline.runtime runs
over the image in overlapping tiles, blended, so any image size works with bounded
memory.
"classical" needs no model (see pipeline.classical) and is what a fresh install
without a model falls back to.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from . import classical, size
from ..runtime.models import Model
from ..runtime import predict_probability

ENGINES = ("auto", "unet", "classical")
log = logging.getLogger("psdwatch")


def probabilities(image: np.ndarray, engine: str, model: Model | None = None,
                  exclude: np.ndarray | None = None, nm_per_px: float | None = None,
                  tile: int = 512, overlap: int = 64, precision: str | None = None) -> np.ndarray:
    """Per-pixel particle probability at the image's own resolution (the classical
    engine's is 0 or 1), so that both engines can be resampled the same way."""
    if engine == "unet":
        if model is None:
            raise ValueError("engine 'unet' needs a model, and none is live")
        return predict_probability(model, image, exclude, tile, overlap, precision)
    if engine == "classical":
        return classical.segment_classical(image, nm_per_px=nm_per_px, exclude=exclude).astype(np.float32)
    raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


def segment(image: np.ndarray, engine: str, model: Model | None = None,
            exclude: np.ndarray | None = None, nm_per_px: float | None = None,
            tile: int = 512, overlap: int = 64, precision: str | None = None,
            threshold: float = 0.5, scale: float = 1.0) -> tuple[np.ndarray, str, dict]:
    """The binary particle mask, which engine made it, and its timing.

    `engine` is "unet" or "classical" as already resolved by the caller (auto
    becomes unet when a live model exists): the engine that ran is always
    reported, never silently swapped. `scale` < 1 segments a shrunk copy
    (pipeline.size) and interpolates the probabilities back to full size.
    """
    started = time.perf_counter()
    if scale < 1.0:
        small = size.shrink(image, scale)
        scaled_nm = nm_per_px * image.shape[1] / small.shape[1] if nm_per_px else None
        prob = size.enlarge(probabilities(small, engine, model, size.shrink_mask(exclude, small.shape),
                                          scaled_nm, tile, overlap, precision), image.shape)
    else:
        prob = probabilities(image, engine, model, exclude, nm_per_px, tile, overlap, precision)
    mask = prob > (threshold if engine == "unet" else 0.5)
    if exclude is not None:
        mask &= ~exclude
    return mask, engine, {"segment_s": time.perf_counter() - started}
