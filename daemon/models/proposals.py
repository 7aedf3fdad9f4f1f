"""Annotation proposals: a processed image and its predicted mask, written where
people can correct the mask instead of drawing one from nothing.

The pair is written in the layout the annotations folder uses (`<stem>.tif`
beside `<stem>_mask.png`, 0/255), so a corrected pair is moved into the
annotations folder as it is, and the next retraining learns from it. The image is
a 16-bit TIFF because that is what Fiji, napari and GIMP all open; training
normalises each image by its own percentiles, so a linear rescale costs nothing.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import tifffile

from ...pipeline.io.files import write_atomic

log = logging.getLogger("psdwatch")

_UNSAFE = re.compile(r"[^\w.\-]+")


def proposal_stem(image_path: str, sha256: str) -> str:
    """A file-system-safe stem that cannot collide: same names in two samples or
    two versions of one file differ by their content hash."""
    stem = _UNSAFE.sub("_", Path(image_path).stem).strip("._") or "image"
    return f"{stem[:80]}_{sha256[:8]}"


def as_uint16(data: np.ndarray) -> np.ndarray:
    """The pixels as uint16: unchanged when they already fit, else a linear stretch."""
    if np.issubdtype(data.dtype, np.integer) or np.array_equal(data, np.round(data)):
        if data.min() >= 0 and data.max() <= 65535:
            return data.astype(np.uint16)
    low, high = float(np.min(data)), float(np.max(data))
    scale = 65535.0 / (high - low) if high > low else 0.0
    return ((data - low) * scale).astype(np.uint16)


def write_proposal(proposals_dir: Path, sample: str, image_path: str, sha256: str,
                   data: np.ndarray, mask: np.ndarray, limit: int = 500) -> Path | None:
    """Write <dir>/<sample>/<stem>.tif and <stem>_mask.png; the image's path, or
    None when it exists already or the folder holds `limit` proposals (a folder
    nobody empties must not fill the disk)."""
    folder = Path(proposals_dir) / (_UNSAFE.sub("_", sample).strip("._") or "sample")
    stem = proposal_stem(image_path, sha256)
    image_out, mask_out = folder / f"{stem}.tif", folder / f"{stem}_mask.png"
    if image_out.exists():
        return None
    if count_proposals(proposals_dir) >= limit:
        log.info("proposals: %s holds %d proposals already; not writing more", proposals_dir, limit)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    # The mask first and the image last: a pair is complete once its image exists.
    write_atomic(mask_out, cv2.imencode(".png", mask.astype(np.uint8) * 255)[1].tobytes())
    tiff = io.BytesIO()
    tifffile.imwrite(tiff, as_uint16(data), compression="zlib")
    write_atomic(image_out, tiff.getvalue())
    return image_out


def count_proposals(proposals_dir: Path) -> int:
    folder = Path(proposals_dir)
    return sum(1 for _ in folder.rglob("*_mask.png")) if folder.is_dir() else 0

