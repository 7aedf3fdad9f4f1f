"""A corpus of scale-bar layouts as people publish them, with truth (test and bench data).

Why a corpus and not only ``bars.draw_scale_bar``: a reader is judged per layout
(label above the bar on texture, beside it, an SEM data line, a Zeiss databar, an
italic µ...), and published figures arrive as 8-bit PNG or JPEG at quality 75, so a
frame here is drawn, then encoded and decoded the way it would reach psdwatch.
Every frame is reproducible from (layout, index).
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np

from .draw import FONTS, ITALIC_FONTS, MORE_FONTS, draw_scale_bar

# layout -> (bars style, label beside the bar?, fonts)
LAYOUTS: dict[str, tuple[str, bool | None, tuple[str, ...]]] = {
    "band": ("band", None, FONTS + MORE_FONTS),
    "box": ("box", None, FONTS + MORE_FONTS),
    "above": ("bare", False, ("LiberationSerif-Bold", "FreeSerifBold", "NotoSerif-Bold", "DejaVuSerif-Bold")
              + MORE_FONTS),
    "beside": ("bare", True, FONTS + MORE_FONTS),
    "fei": ("fei", None, FONTS + MORE_FONTS),
    "dataline": ("dataline", None, FONTS + MORE_FONTS),
    "zeiss": ("zeiss", None, FONTS + MORE_FONTS),
    "italic": ("bare", None, ITALIC_FONTS),
    # A figure in a paper: bold serif label over a bare bar, the frame shrunk to
    # 400-800 px wide (bars 2-7 px thick, soft ends), grain added, JPEG q75; every other frame
    # dark bar and label on a light background.
    "figure": ("bare", False, ("LiberationSerif-Bold", "FreeSerifBold", "NotoSerif-Bold", "DejaVuSerif-Bold")),
}


def background(size: int, dtype: type, rng: np.random.Generator, flat: bool = False) -> np.ndarray:
    """HAADF-like support: smooth texture (or a flat grey), fine grain, bright particles, noise."""
    small = rng.normal(size=(size // 16 + 2, size // 16 + 2))
    tex = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    tex = 0.35 + (0.01 if flat else 0.08) * tex + 0.04 * cv2.GaussianBlur(rng.normal(size=(size, size)), (0, 0), 2)
    for _ in range(int(rng.integers(15, 40))):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(0.004, 0.02) * size
        x0, x1 = int(max(0, cx - 4 * r)), int(min(size, cx + 4 * r + 1))
        y0, y1 = int(max(0, cy - 4 * r)), int(min(size, cy + 4 * r + 1))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        tex[y0:y1, x0:x1] += rng.uniform(0.2, 0.5) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    tex += rng.normal(scale=0.03, size=tex.shape)
    top = np.iinfo(dtype).max
    return np.clip(tex * top, 0, top).astype(dtype)


def corpus_frame(layout: str, index: int, size: int | None = None) -> tuple[np.ndarray, dict]:
    """Frame ``index`` of ``layout``: (image as psdwatch would decode it, truth with nm_per_px).

    Cycles through the layout's fonts, 8 and 16 bit, PNG (lossless) and JPEG q75
    (8 bit), textured and flat supports, 1024 and 2048 px unless ``size`` is given;
    every fifth frame is shrunk 0.4-0.8x as a figure in a paper is (soft bar ends,
    blurred glyphs), its nm_per_px scaled to match.
    """
    style, beside, fonts = LAYOUTS[layout]
    rng = np.random.default_rng(zlib.crc32(f"corpus/{layout}/{index}".encode()))
    font = fonts[index % len(fonts)]
    size = size or (1024, 2048)[(index // 2) % 2]
    figure = layout == "figure"
    jpeg = index % 3 == 2 or figure
    dtype = np.uint8 if jpeg or index % 2 == 0 else np.uint16
    # Italic: a µm label (bars of 1 µm and more), the glyph the layout is about.
    npp = 10 ** rng.uniform(0.9, 2.3) if layout == "italic" else 10 ** rng.uniform(-1.5, 2.5)
    image, truth = draw_scale_bar(background(size, dtype, rng, flat=index % 4 == 1), npp, style, rng, font, beside)
    if figure and index % 2 == 1:
        image = np.iinfo(dtype).max - image  # dark bar and label on a light surface
    shrunk = index % 5 == 4 or figure
    if shrunk:
        f = rng.uniform(400, 800) / size if figure else rng.uniform(0.4, 0.8)
        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        k = image.shape[1] / size
        npp, truth["bar_px"] = npp / k, truth["bar_px"] * k
        for key in ("bar_bbox", "annotation_bbox"):
            truth[key] = tuple(int(round(v * k)) for v in truth[key])
    if figure:  # the paper's reproduction adds its own grain over bar and label alike
        image = np.clip(image + rng.normal(scale=0.04 * 255, size=image.shape), 0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    truth.update(layout=layout, index=index, nm_per_px=npp, encoding="jpeg75" if jpeg else "png",
                 bits=8 if dtype == np.uint8 else 16, shrunk=shrunk)
    return image, truth
