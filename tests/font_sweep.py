"""Small scale-bar labels in every Latin font on this machine: a search for wrong readings.

Why: the rendered corpus and the held-out figures use a dozen fonts at sizes Tesseract
reads well.  Labels 5-15 px tall in fonts nobody tuned on (56 Latin faces of DejaVu,
Liberation, FreeFont and Noto, regular, bold and italic) are where OCR slips: sweeps of
such frames found '5 µm' read '2 um' at one OCR size, '50 um' read '30um' at all four
and '5 nm' read '5 mm' (all three are flagged now).  Every frame is seeded by its
index alone, so any one can be drawn again.  Flat noisy grounds, white on dark or dark
on light, label above or below, drawn at 18-48 px and shrunk to 0.22-0.6, JPEG half
the time.  Used by tests/test_scale_real.py (a few frames) and bench/scale_bars.py.
"""
from __future__ import annotations

import re
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

_FAMILIES = ("dejavu", "liberation", "freefont")
_NOTO = re.compile(r"Noto(Sans|Serif|SansMono)-(Regular|Bold|Italic|BoldItalic)\.ttf")
VALUES = (1, 2, 5, 10, 20, 50, 100, 200, 500)
UNITS = ("nm", "nm", "µm", "um", "μm")
UNIT_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3}


def fonts() -> list[str]:
    """The Latin text faces installed (Debian's fonts-dejavu, -liberation, -freefont, -noto)."""
    root = Path("/usr/share/fonts/truetype")
    found = [str(p) for d in _FAMILIES for p in (root / d).glob("*.ttf")
             if "Math" not in p.name and "ExtraLight" not in p.name]
    found += [str(p) for p in (root / "noto").glob("NotoS*-*.ttf") if _NOTO.match(p.name)]
    return sorted(found)


def frame(index: int) -> tuple[np.ndarray, dict]:
    """Sweep frame ``index``: (grey uint8 image, truth with nm_per_px, label and font)."""
    faces = fonts()
    rng = np.random.default_rng(zlib.crc32(f"fontsweep{index}".encode()))
    font = faces[index % len(faces)]
    value, unit = int(rng.choice(VALUES)), str(rng.choice(UNITS))
    text = f"{value} {unit}" if rng.random() < 0.8 else f"{value}{unit}"
    size, shrink = int(rng.integers(18, 48)), float(rng.uniform(0.22, 0.6))
    white = bool(rng.random() < 0.6)
    ground = rng.uniform(30, 90) if white else rng.uniform(160, 225)
    ink = 245 if white else 15
    h, w = 800, 1100
    pil = Image.fromarray(np.clip(ground + rng.normal(0, rng.uniform(3, 12), (h, w)), 0, 255).astype(np.uint8))
    draw, face = ImageDraw.Draw(pil), ImageFont.truetype(font, size)
    bar, thick = int(rng.integers(120, 500)), int(rng.integers(4, 12))
    x0, y0 = int(rng.integers(40, w - bar - 40)), int(rng.integers(500, 740))
    draw.rectangle([x0, y0, x0 + bar - 1, y0 + thick - 1], fill=ink)
    above = bool(rng.random() < 0.6)
    ty = y0 - size * 1.35 if above else y0 + thick + size * 0.25
    draw.text((x0 + bar / 2 - draw.textlength(text, font=face) / 2, ty), text, font=face, fill=ink)
    img = cv2.resize(np.asarray(pil), None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 90))])[1], 0)
    return img, {"text": text, "font": Path(font).stem, "size": size, "shrink": shrink, "white": white,
                 "above": above, "nm_per_px": value * UNIT_NM[unit] / (bar * shrink)}
