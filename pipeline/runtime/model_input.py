"""How a frame is prepared for the network: the same for training, scoring and
`process`, whatever runtime then runs the network (pipeline.runtime)."""

from __future__ import annotations

import cv2
import numpy as np

from .models import INPUT_MODES

FLATTEN_RADIUS_PX = 48


def flatten_background(image: np.ndarray, radius: int = FLATTEN_RADIUS_PX) -> np.ndarray:
    """The frame minus its slowly varying background (a white top-hat: a grey opening
    with a disk wider than the particles the network sees, smoothed).

    On thick oxide supports a HAADF particle is a faint bump on a bright, uneven
    background; scaled as a whole, such a frame puts the particles in the middle of
    the grey range, where the network learnt support, and starter-v2 found 1 in 10
    of them. The support's signal adds to the particle's (HAADF intensity grows with
    thickness), so subtracting it leaves particles on a flat floor, as on thin
    carbon. The opening runs on a copy shrunk to a twelfth of the radius (cheap;
    the background is smooth anyway). Particles wider than the disk lose their
    middle: size-aware segmentation shrinks frames of large particles first."""
    img = np.asarray(image, np.float32)
    h, w = img.shape
    step = max(1, radius // 12)
    small = cv2.resize(img, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
    r = max(1, round(radius / step))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, disk, borderType=cv2.BORDER_REFLECT)
    background = cv2.GaussianBlur(background, (0, 0), r / 4)
    return img - cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)


def normalise(image: np.ndarray, exclude: np.ndarray | None = None, mode: str = "plain") -> np.ndarray:
    """Map raw detector values to a range the network was trained on (`mode`
    "flattened": after flatten_background, for models trained that way).

    Robust percentiles rather than min/max, because hot pixels and the burned-in
    scale bar would otherwise squash the support into a few grey levels; the
    upper percentile is a high one because particles are only a few percent of
    the pixels and must stay above 1, not be clipped into the support.
    """
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown model input {mode!r}; this version knows {', '.join(INPUT_MODES)}")
    if mode == "flattened":
        image = flatten_background(image)
    values = image[~exclude] if exclude is not None and exclude.any() else image
    if values.size == 0:
        values = image
    lo, hi = np.percentile(values, (1.0, 99.5))
    scale = float(hi - lo) if hi > lo else 1.0
    out = (image.astype(np.float32) - np.float32(lo)) / np.float32(scale)
    return np.clip(out, -1.0, 4.0, out=out)
