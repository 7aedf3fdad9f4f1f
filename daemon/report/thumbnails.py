"""The one thing kept from an image's pixels: a thumbnail with the measured outlines,
written at processing time so that a report never re-reads the share."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ...pipeline.io.files import write_atomic


def _outline(img: np.ndarray, region: np.ndarray, scale: float, colour: tuple[int, int, int]) -> int:
    """Draw the outlines of `region` (full-resolution boolean) onto the scaled
    image. Contours are found at full resolution and their points scaled, so
    small particles keep an outline instead of vanishing in the downscale."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    shift = 4  # sub-pixel coordinates: 1/16 px
    polys = [np.round(((c[:, 0, :] + 0.5) * scale - 0.5) * (1 << shift)).astype(np.int32)
             for c in contours]
    if polys:
        cv2.polylines(img, polys, True, colour, 1, cv2.LINE_AA, shift)
    return len(polys)


MEASURED_BGR = (0, 200, 255)   # amber: readable on black support and white metal
EXCLUDED_BGR = (235, 140, 60)  # blue: segmented but not measured (border, scale bar)


def write_thumbnail(analysis, path: Path, max_px: int = 512) -> Path:
    """encode_thumbnail, written to `path` atomically."""
    return write_atomic(Path(path), encode_thumbnail(analysis, path, max_px))


def encode_thumbnail(analysis, path: Path, max_px: int = 512) -> bytes:
    """The image with the measured particles outlined, at most max_px on its long
    side: the sample page's thumbnail (PNG, 512 px) and the view one click away
    that lets a person check a suspicious image without opening Fiji (JPEG,
    2048 px; the format follows the file name).

    Called once per image by the worker while the pixels are in memory, so the
    report never re-reads the share. Contrast is stretched between robust
    percentiles (0.5 and 99.5 %) so that a few hot pixels or a black databar do
    not wash the picture out. Measured particles (analysis.labels > 0) are
    outlined in amber; segmented regions that were *not* measured (touching the
    border or the scale bar) in blue, so a person sees what was left out too.
    """
    data = np.asarray(analysis.data, dtype=np.float32)
    h, w = data.shape[:2]
    scale = min(1.0, max_px / max(h, w))
    step = max(1, max(h, w) // 1024)  # percentiles of ~1 Mpx are as good and 4x cheaper
    probe = data[::step, ::step]
    probe = probe[np.isfinite(probe)]
    lo, hi = (np.percentile(probe, (0.5, 99.5)) if probe.size else (0.0, 1.0))
    if not hi > lo:
        hi = lo + 1.0
    data = np.nan_to_num(data, nan=lo, posinf=hi, neginf=lo)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        data = cv2.resize(data, size, interpolation=cv2.INTER_AREA)
    grey = np.clip((data - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    labels = np.asarray(analysis.labels)
    measured = labels > 0
    if analysis.mask is not None:
        _outline(img, np.asarray(analysis.mask, bool) & ~measured, scale, EXCLUDED_BGR)
    _outline(img, measured, scale, MEASURED_BGR)
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    ok, encoded = cv2.imencode(".jpg" if jpeg else ".png", img,
                               [cv2.IMWRITE_JPEG_QUALITY, 90] if jpeg else [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError(f"could not encode the picture for {analysis.image}")
    return encoded.tobytes()
