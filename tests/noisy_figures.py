"""Figures whose bar and label were drawn before the noise: a scale bar on a noisy print.

Why: in the held-out figures (tests/heldout_figures.py) the bar is drawn on a real
texture and then noise is added, but mostly with the ink far from the texture's grey.
Here a dark bar sits on a light bright-field support (or a white one on a dark HAADF
support) with particles as dark (bright) as the ink, and the noise, sigma 8-30 grey
levels after shrinking, goes over bar and label alike: a row of a 2-4 px bar then
breaks here and there, and a bar may run into a particle.  Sweeps of such frames
found two confident wrong readings: the piece of a bar broken by noise read with the
whole bar's label (1.7x), and a bar that ends in a particle measured through it
(+4 %).  Every frame is seeded by its index alone.  Used by tests/test_scale_real.py
and bench/scale_bars.py.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import DATA

FONTS = tuple(str(p) for d in ("dejavu", "liberation") for p in sorted(Path(f"/usr/share/fonts/truetype/{d}").glob("*.ttf"))
              if "Mono" not in p.name and "ExtraLight" not in p.name)
LABELS = ((10, "nm"), (20, "nm"), (50, "nm"), (100, "nm"), (200, "nm"), (500, "nm"), (1, "µm"), (2, "µm"),
          (5, "nm"), (2, "nm"), (1, "um"))
UNIT_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3}


def _texture(rng: np.random.Generator) -> np.ndarray:
    files = sorted(p for p in (DATA / "pt-alumina-haadf").glob("ptal_*.tif") if "_labels" not in p.name)
    img = tifffile.imread(files[int(rng.integers(len(files)))]).astype(np.float32)
    return img[..., 0] if img.ndim == 3 else img


def frame(index: int, label: tuple[float, str] | None = None) -> tuple[np.ndarray, dict]:
    """Noisy figure ``index``: (grey uint8 image, truth with text, nm_per_px and bar_px);
    ``label``, (value, unit), puts another label on the same frame (same font, bar, noise)."""
    rng = np.random.default_rng(zlib.crc32(f"noisy{index}".encode()))
    k = float(rng.uniform(2.5, 4.0))  # drawn at k x, shrunk by k
    H, W = int(500 * k), int(rng.uniform(500, 750) * k)
    tex = cv2.resize(_texture(rng), (W, H), interpolation=cv2.INTER_CUBIC)
    lo, hi = np.percentile(tex, (1, 99.5))
    tex = np.clip((tex - lo) / (hi - lo), 0, 1)
    white = rng.random() < 0.4
    tex = (30 + 170 * tex) if white else (255 - (30 + 170 * tex))  # dark metal on a light support, or HAADF
    value, unit = LABELS[int(rng.integers(len(LABELS)))]
    value, unit = label or (value, unit)
    text = f"{value:g} {unit}"
    font = ImageFont.truetype(FONTS[int(rng.integers(len(FONTS)))], int(k * rng.uniform(11, 20)))
    length, thick = int(k * rng.uniform(50, 220)), int(round(k * rng.uniform(2.0, 4.0)))
    x0, y0 = int(k * rng.uniform(15, 40)), H - int(k * rng.uniform(20, 45))
    pil = Image.fromarray(tex.astype(np.uint8))
    draw, ink = ImageDraw.Draw(pil), (255 if white else 0)
    draw.rectangle([x0, y0, x0 + length - 1, y0 + thick - 1], fill=ink)
    size = font.size
    top = y0 - 1.3 * size if rng.random() < 0.6 else y0 + thick + 0.3 * size
    draw.text((x0 + length / 2 - draw.textlength(text, font=font) / 2, top), text, font=font, fill=ink)
    w, h = int(W / k), int(H / k)
    img = cv2.resize(np.asarray(pil).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    img = np.clip(img + rng.normal(0, rng.uniform(8, 30), img.shape), 0, 255).astype(np.uint8)
    img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 90))])[1], 0)
    bar_px = length * w / W
    return img, {"text": text, "value": value, "unit": unit, "bar_px": bar_px,
                 "nm_per_px": value * UNIT_NM[unit] / bar_px}
