"""Labels with a decimal point or comma, and bars beside or far from their label: a search for wrong readings.

Why: the other generators draw whole numbers (one '0.5 µm' in the held-out figures), and
labels above or below their bar.  A point is the smallest glyph of a label, and a
reader that loses it, or the digits before it, reads a number 2-10x off that passes
every check: a grid of such labels (session 17) found eleven confident misreadings: '1.0 µm' read
'10um' (its 1 x 2 px point left out), a monospace '0.25 µm' read '25 pm' (its '0.' a
wide cell away, not linked into the line), a 36 px '0.5 µm' on a 240 px tall frame read
'5 um' (the label window cut its tallest glyphs).  All are flagged now; this module keeps
the family as a regression set (no longer held out).  Each frame is seeded by its index
alone.  Fonts regular, bold, italic and monospace; text 12-36 px; the label above,
below, left or right of the bar or far below it; frames 240-600 px tall; noise; JPEG
half the time.
"""
from __future__ import annotations

import re
import zlib

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

_ROOT = "/usr/share/fonts/truetype/"
FONTS = ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Oblique.ttf", "dejavu/DejaVuSerif-Bold.ttf",
         "liberation/LiberationSerif-Regular.ttf", "liberation/LiberationSerif-Italic.ttf",
         "liberation/LiberationSans-Regular.ttf", "liberation/LiberationSans-Bold.ttf",
         "liberation/LiberationSans-BoldItalic.ttf", "freefont/FreeSerifItalic.ttf",
         "freefont/FreeMono.ttf", "freefont/FreeMonoOblique.ttf", "liberation/LiberationMono-Regular.ttf")
TEXTS = ("0.5 µm", "0.2 µm", "0.1 µm", "2.5 nm", "1.0 µm", "0.25 µm", "10.0 nm", "0,5 µm", "1,5 µm",
         "0.5 nm", "1 µm", "2 nm", "100 nm", "500nm", "1,000 nm", "2.000 µm")
LAYOUTS = ("above", "below", "left", "right", "far")
UNIT_NM = {"nm": 1.0, "µm": 1e3}


def value_nm(text: str) -> float:
    """The bar's length in nm that ``text`` writes ('0,5 µm': 500; '1,000 nm': 1000, an
    English thousands separator; the reader must flag both '1,000' and '2.000')."""
    m = re.fullmatch(r"([\d.,]+)\s*(nm|µm)", text)
    assert m, text
    num = m.group(1).replace(",", "") if re.fullmatch(r"\d{1,3},\d{3}", m.group(1)) else m.group(1)
    return float(num.replace(",", ".")) * UNIT_NM[m.group(2)]


def draw(text: str, font: str, size: int, layout: str, height: int = 600, bar: int = 300,
         ground: float = 190.0, ink: float = 15.0) -> np.ndarray:
    """One label and its bar (12 px thick, at ``bar`` px) on a flat ground, 900 px wide,
    as drawn before shrinking."""
    im = Image.new("L", (900, height), int(ground))
    d = ImageDraw.Draw(im)
    face = ImageFont.truetype(_ROOT + font, size)
    tw, t, y = d.textlength(text, font=face), 12, height - 80
    if layout == "left":
        x0 = 900 - 60 - bar
        d.text((x0 - 20 - tw, y + t / 2 - size * 0.6), text, font=face, fill=int(ink))
    elif layout == "right":
        x0 = 60
        d.text((x0 + bar + 20, y + t / 2 - size * 0.6), text, font=face, fill=int(ink))
    elif layout == "far":  # the label 1.8 sizes below the bar: beyond the line search, text first
        x0, y = 60, height - 60 - int(size * 3.5)
        d.text((x0 + bar / 2 - tw / 2, y + t + size * 1.8), text, font=face, fill=int(ink))
    elif layout == "below":
        x0, y = 60, height - 60 - int(size * 2)
        d.text((x0 + bar / 2 - tw / 2, y + t + size * 0.25), text, font=face, fill=int(ink))
    else:
        x0 = 60 + (900 - 120 - bar) // 2
        d.text((x0 + bar / 2 - tw / 2, y - size * 1.4), text, font=face, fill=int(ink))
    d.rectangle((x0, y, x0 + bar - 1, y + t - 1), fill=int(ink))
    return np.asarray(im, np.float32)


def frame(index: int) -> tuple[np.ndarray, dict]:
    """Frame ``index``: (grey uint8 image, truth with nm_per_px, text, font, layout)."""
    rng = np.random.default_rng(zlib.crc32(f"decimal{index}".encode()))
    font = FONTS[index % len(FONTS)]
    text = str(rng.choice(TEXTS))
    layout = str(rng.choice(LAYOUTS))
    size, shrink = int(rng.integers(30, 61)), float(rng.uniform(0.35, 1.0))
    height = int(rng.choice((400, 600)))
    bar = int(rng.integers(150, 400))
    white = bool(rng.random() < 0.4)
    ground, ink = (rng.uniform(30, 80), 240.0) if white else (rng.uniform(170, 225), 15.0)
    img = draw(text, font, size, layout, height, bar, ground, ink)
    img = img + rng.normal(0, rng.uniform(2, 8), img.shape)
    img = cv2.resize(img, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 92))])[1], 0)
    return img, {"text": text, "font": font, "layout": layout, "size_px": size * shrink,
                 "nm_per_px": value_nm(text) / (bar * shrink)}
