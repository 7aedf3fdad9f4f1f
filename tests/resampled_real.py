"""The real micrographs of ../shared/data/scalebars-real as a figure's maker or a viewer
changes them: enlarged, shrunk by a non-whole factor, blurred, compressed, noisy,
turned a little, their greys bent.  None of these frames was drawn by the project:
what was tuned on the 17 frames as they are is tried here on what they become.

Each transform works on the file's 8-bit colour (as saved), ends in 8 bits (overshoot
clipped, as a saved figure's is) and gives grey as io makes it (Rec. 601), with the
truth's nm/px carried through the change of scale.
"""
from __future__ import annotations

import functools
import json

import cv2
import numpy as np

from tests.conftest import DATA
from tests.heldout_figures import UNIT_NM

REAL = DATA / "scalebars-real"
TRANSFORMS = ("enlarged 1.5x", "enlarged 2x", "shrunk 0.7x", "blurred 1 px", "JPEG q40", "noise 10",
              "turned 0.4°", "gamma 0.5", "gamma 2")


@functools.cache
def truth() -> dict:
    """truth.json of the real frames: label, bar length in px, layout, source."""
    return json.loads((REAL / "truth.json").read_text())


def names() -> list[str]:
    """The real frames with a truth, sorted."""
    return sorted(truth())


def nm_per_px(name: str, scale: float = 1.0) -> float:
    """The truth's nm/px of real frame ``name`` once resized by ``scale``."""
    t = truth()[name]
    return t["value"] * UNIT_NM[t["unit"]] / (t["bar_px"] * scale)


def grey(bgr: np.ndarray) -> np.ndarray:
    """An 8-bit BGR frame (as cv2 reads it) in grey as io makes it (Rec. 601), float32."""
    return np.clip(bgr, 0, 255).round()[..., ::-1].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def frame(name: str, transform: str) -> tuple[np.ndarray, float]:
    """Real frame ``name`` changed by ``transform`` (one of TRANSFORMS): (grey image, nm/px)."""
    return changed(name, transform)


def changed(name: str, *transforms: str, clip: bool = True) -> tuple[np.ndarray, float]:
    """Real frame ``name`` changed by ``transforms`` in turn (those of TRANSFORMS, any
    factor or amount, and "sharpened": unsharp mask, amount 1, sigma 1.5 px): (grey
    image, nm/px).  ``clip``: back to 8 bits after each change, as a saved figure is;
    else the overshoot is kept (a float frame; JPEG clips it all the same)."""
    image = cv2.imread(str(REAL / name), cv2.IMREAD_COLOR).astype(np.float32)
    scale, rng = 1.0, np.random.default_rng(sum(map(ord, name + "+".join(transforms))))
    for transform in transforms:
        image, factor = _change(image, transform, rng)
        scale *= factor
        if clip:
            image = np.clip(image, 0, 255).round()
    return grey(image) if clip else image[..., ::-1] @ np.array([0.299, 0.587, 0.114], np.float32), \
        nm_per_px(name, scale)


def _change(image: np.ndarray, transform: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One change of a float BGR frame: (changed frame, its factor of scale)."""
    kind, _, amount = transform.partition(" ")
    scale = 1.0
    if kind in ("enlarged", "shrunk"):
        scale = float(amount.rstrip("x"))
        image = cv2.resize(image, None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    elif kind == "blurred":
        image = cv2.GaussianBlur(image, (0, 0), float(amount.split()[0]))
    elif kind == "JPEG":
        image = np.clip(image, 0, 255).round().astype(np.uint8)
        image = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(amount[1:])])[1],
                             cv2.IMREAD_COLOR).astype(np.float32)
    elif kind == "noise":
        image = image + rng.normal(0, float(amount), image.shape[:2])[..., None]
    elif kind == "turned":
        h, w = image.shape[:2]
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(amount.rstrip("°")), 1.0)
        image = cv2.warpAffine(image, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    elif kind == "gamma":
        image = 255 * (np.clip(image, 0, 255) / 255) ** float(amount)
    elif kind == "sharpened":
        image = image + (image - cv2.GaussianBlur(image, (0, 0), 1.5))
    else:
        raise ValueError(f"unknown transform {transform!r}")
    return image.astype(np.float32), scale
