"""Masks from boxes: weak supervision for the real catalyst images that people
boxed one particle at a time (YOLO boxes, ../shared/data/catalysts-boxed).

A box is tight around its particle, so inside it the particle is the bright,
compact thing and the rest is support. Each particle's edge is put at half
way between the support around it (the box's rim) and the particle's own
plateau, the same relative rule the classical engine uses for edges, and
clipped to the ellipse inscribed in the box, so that bright support inside a
box corner never becomes particle. Outside the boxes everything is support:
people boxed every particle except those cut by the image edge, which
`boxes_near_edge` lets a trainer leave out.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi


def read_yolo_boxes(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Boxes (x0, y0, x1, y1) in pixels from a YOLO label file (class xc yc w h, normalised)."""
    rows = np.loadtxt(path, ndmin=2) if Path(path).stat().st_size else np.zeros((0, 5))
    h, w = shape
    xc, yc, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
    return np.column_stack([xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2])


def read_coco_boxes(path: Path, image_name: str) -> np.ndarray | None:
    """Boxes (x0, y0, x1, y1) in pixels of the image named `image_name` in a COCO JSON
    (as CVAT and Label Studio export: images[].file_name, annotations[].bbox = x, y, w, h);
    None when the file does not list that image."""
    coco = json.loads(Path(path).read_text())
    ids = [im["id"] for im in coco.get("images", []) if Path(str(im.get("file_name", ""))).name == image_name]
    if not ids:
        return None
    rows = [a["bbox"] for a in coco.get("annotations", []) if a.get("image_id") == ids[0] and a.get("bbox")]
    boxes = np.asarray(rows, np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]])


def coco_image_names(path: Path) -> list[str]:
    """The image file names a COCO JSON annotates (empty for any other JSON)."""
    try:
        coco = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(coco, dict) or "annotations" not in coco:
        return []
    return [Path(str(im.get("file_name", ""))).name for im in coco.get("images", [])]


def mask_from_boxes(image: np.ndarray, boxes: np.ndarray, level: float = 0.5) -> np.ndarray:
    """The particle mask: in each box, pixels above `level` of the way from the rim's
    grey to the particle's plateau, inside the box's inscribed ellipse, holes filled."""
    raw = np.asarray(image, np.float32)
    h, w = raw.shape
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        a, b = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
        c, d = int(min(w, np.ceil(x1))), int(min(h, np.ceil(y1)))
        if c - a < 3 or d - b < 3:
            continue
        # Denoise in proportion to the particle (noisy low-contrast frames), from a
        # padded crop so the blur does not see the crop's edge.
        sigma = max(1.0, 0.07 * min(c - a, d - b))
        pad = int(3 * sigma)
        pa, pb = max(0, a - pad), max(0, b - pad)
        padded = cv2.GaussianBlur(raw[pb:min(h, d + pad), pa:min(w, c + pad)], (0, 0), sigma)
        crop = padded[b - pb:d - pb, a - pa:c - pa]
        yy, xx = np.mgrid[b:d, a:c].astype(np.float32) + 0.5
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        rho = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        rim = crop[rho >= 0.85]
        core = crop[rho <= 0.35]
        if rim.size == 0 or core.size == 0:
            continue
        support, plateau = float(np.median(rim)), float(np.percentile(core, 75))
        if plateau <= support:
            continue
        inside = (crop > support + level * (plateau - support)) & (rho <= 1.0)
        labels, n = ndi.label(inside)
        if n == 0:
            continue
        centre = labels[int(np.clip(cy - b, 0, d - b - 1)), int(np.clip(cx - a, 0, c - a - 1))]
        keep = centre if centre else 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
        mask[b:d, a:c] |= ndi.binary_fill_holes(labels == keep)
    return mask


def boxes_near_edge(boxes: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    """Which boxes touch the image edge (their particle may be cut)."""
    h, w = shape
    return ((boxes[:, 0] <= margin) | (boxes[:, 1] <= margin)
            | (boxes[:, 2] >= w - margin) | (boxes[:, 3] >= h - margin))
