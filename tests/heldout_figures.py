"""Held-out published figures: scale bars the project's renderer (scale/draw.py) did not draw.

Why: the reader must not be tuned to its own corpus.  These frames are drawn with PIL on
crops of real HAADF frames of ../shared/data/pt-alumina-haadf (inverted to a bright-field
look 60 % of the time, sometimes with its contrast reaching the ink's grey), a bar
about 2-3 px thick after shrinking, a bold or plain DejaVu/Liberation label (nm, µm, μm
or um) above, below or beside it, white or black, sometimes on a box; drawn at 2-4.5x
and shrunk to 420-620 px tall (INTER_AREA, a non-whole factor: soft bar ends), noise
added, JPEG q60-85, RGB as a journal serves it.  Truth nm_per_px = value / bar length
after shrinking.  Used by tests/test_scale_real.py and bench/scale_bars.py; fixed
before the text-first reader was measured on it, never tuned on.
"""
from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import DATA

TEXTURES = DATA / "pt-alumina-haadf"
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
LABELS = ((10, "nm"), (20, "nm"), (50, "nm"), (100, "nm"), (200, "nm"), (500, "nm"), (1, "µm"),
          (2, "µm"), (5, "µm"), (5, "nm"), (2, "nm"), (1, "um"), (20, "μm"), (0.5, "µm"))
UNIT_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3}
# inks of the coloured series (frame(colour=...)): yellow, red, green, cyan, orange, magenta
COLOURS = ((255, 255, 0), (230, 20, 20), (0, 220, 0), (0, 255, 255), (255, 140, 0), (255, 0, 255))


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A crop of a real HAADF frame, rescaled to 0-255 grey (often inverted)."""
    files = sorted(p for p in TEXTURES.glob("ptal_*.tif") if "_labels" not in p.name)
    img = tifffile.imread(files[int(rng.integers(len(files)))]).astype(np.float32)
    if img.ndim == 3:
        img = img[..., 0]
    s = max(h / img.shape[0], w / img.shape[1]) * rng.uniform(1.0, 1.6)
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
    img = img[y:y + h, x:x + w]
    lo, hi = np.percentile(img, (1, 99.5))
    img = np.clip((img - lo) / (hi - lo + 1e-6), 0, 1)
    if rng.random() < 0.6:  # bright-field look
        img = 1 - img
    return 20 + 220 * img


def canvas(rng: np.random.Generator, scale: tuple[float, float], height: tuple[int, int], aspect: float
           ) -> tuple[tuple[float, int, int], np.ndarray, bool]:
    """A figure's drawing ground: ((k, out_h, out_w), texture k times the figure's size,
    white ink or not).  The figure is drawn at k x (``scale``, not a whole factor) and
    shrunk to out_h (``height``) by out_w (up to ``aspect`` times as wide).  The draws
    come in one order, so each generator's frames stay what they were."""
    k = float(rng.uniform(*scale))
    out_h = int(rng.integers(*height))
    out_w = int(out_h * rng.uniform(1.0, aspect))
    tex = texture(rng, int(out_h * k), int(out_w * k))
    return (k, out_h, out_w), tex, bool(rng.random() < 0.5)


def frame(index: int, hard: bool = False, colour: tuple[int, int, int] | None = None,
          label: tuple[float, str] | None = None, outlined: bool = False) -> tuple[np.ndarray, dict]:
    """Held-out figure ``index``: (RGB uint8 image, truth with nm_per_px and bar_px);
    ``label``, (value, unit), puts another label on the same frame (same font, bar, noise).
    ``hard``: another series, noisier (sigma 10-25) and compressed harder (JPEG q45-70).
    ``colour``: another series, its bar and label drawn in that RGB colour (written after
    the text-first reader and the channel reading were measured on the grey series).
    ``outlined``: another series, bar and label drawn with an outline of the opposite
    colour round every stroke (a white '200 nm' edged in black on the image itself, as a
    published TEM figure of ../shared/data/scalebars-real has it), never on a box."""
    series = ("hard" if hard else "") + ("colour" if colour else "") + ("outlined" if outlined else "")
    rng = np.random.default_rng(zlib.crc32(f"heldout{series}{index}".encode()))
    (k, out_h, out_w), tex, white = canvas(rng, (2.0, 4.5), (420, 620), 1.5)
    H, W = tex.shape
    ink = 255 if white else 0
    if rng.random() < 0.6:  # authors pick ink that stands out; else the texture reaches the ink's grey
        tex = rng.uniform(0.55, 0.8) * tex + (rng.uniform(40, 100) if not white else 0)
    else:
        tex = np.clip((tex - 20) * 1.25, 0, 255)  # authors pick ink that stands out
    value, unit = LABELS[int(rng.integers(len(LABELS)))]
    value, unit = label or (value, unit)
    text = f"{value:g} {unit}"
    font = ImageFont.truetype(FONTS[index % len(FONTS)], int(k * rng.uniform(12, 28)))
    bar_len = k * (rng.uniform(25, 80) if rng.random() < 0.4 else rng.uniform(60, 0.45 * out_w))
    thick = int(round(k * rng.uniform(1.8, 3.2)))
    where = ("above", "below", "beside")[index % 3]
    tb = font.getbbox(text)
    tw, th = tb[2] - tb[0], tb[3] - tb[1]
    margin = int(k * rng.uniform(8, 25))
    corner_right = rng.random() < 0.4
    if where == "beside":
        total = bar_len + k * 8 + tw
        x0 = W - margin - total if corner_right else margin
        y_bar = H - margin - th // 2 - thick // 2
        bx0 = x0
        tx, ty = x0 + bar_len + k * 8, y_bar + thick / 2 - th / 2
    else:
        span = max(bar_len, tw)
        x0 = W - margin - span if corner_right else margin
        bx0 = x0 + (span - bar_len) / 2
        tx = x0 + (span - tw) / 2
        gap = k * rng.uniform(4, 12)
        if where == "above":
            y_bar = H - margin - thick
            ty = y_bar - gap - th
        else:
            ty = H - margin - th
            y_bar = ty - gap - thick
    ry0, ry1 = int(min(y_bar, ty)), int(max(y_bar + thick, ty + th))
    rx0, rx1 = int(min(bx0, tx)), int(max(bx0 + bar_len, tx + tw))
    m = float(tex[ry0:ry1, rx0:rx1].mean())  # a label people can read: its ground differs from its ink
    if white and m > 140:
        tex = tex * 140 / m
    elif not white and m < 115:
        tex = 255 - (255 - tex) * 140 / (255 - m)
    im = Image.fromarray(np.dstack([tex] * 3).astype(np.uint8))
    d = ImageDraw.Draw(im)
    if rng.random() < 0.25 and not outlined:  # a box behind (opposite colour)
        pad = k * 6
        bx = (min(bx0, tx) - pad, min(y_bar, ty) - pad, max(bx0 + bar_len, tx + tw) + pad, max(y_bar + thick, ty + th) + pad)
        d.rectangle(bx, fill=(255 - ink,) * 3)
    fill = tuple(colour) if colour else (ink,) * 3
    edge = {}
    if outlined:  # 0.8-2 px after shrinking, round the bar and every glyph
        edge = {"stroke_width": max(1, int(round(k * rng.uniform(0.8, 2.0)))), "stroke_fill": (255 - ink,) * 3}
        d.rectangle((bx0 - edge["stroke_width"], y_bar - edge["stroke_width"], bx0 + bar_len - 1 + edge["stroke_width"],
                     y_bar + thick - 1 + edge["stroke_width"]), fill=edge["stroke_fill"])
    d.rectangle((bx0, y_bar, bx0 + bar_len - 1, y_bar + thick - 1), fill=fill)
    d.text((tx - tb[0], ty - tb[1]), text, font=font, fill=fill, **edge)
    arr = np.asarray(im).astype(np.float32)
    small = cv2.resize(arr, (out_w, out_h), interpolation=cv2.INTER_AREA)
    small = np.clip(small + rng.normal(0, rng.uniform(10, 25) if hard else rng.uniform(2, 14), small.shape[:2])[..., None], 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, "JPEG", quality=int(rng.integers(45, 71) if hard else rng.integers(60, 86)))
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    length = bar_len * out_w / W
    return rgb, {"value": value, "unit": unit, "text": text, "bar_px": length, "where": where, "white": white,
                 "nm_per_px": value * UNIT_NM[unit] / length}


def grey(rgb: np.ndarray) -> np.ndarray:
    """Grey as psdwatch's io makes it from RGB (Rec. 601)."""
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def enlarged(make, **keywords):
    """A generator of RGB figures (``make(i, **keywords)`` -> (RGB, truth)) as one of grey
    frames enlarged 2, 2.5 or 3x (bicubic, clipped to 8 bits), ``frame_of(i)`` -> (grey
    image, truth with bar_px and nm_per_px carried through): a figure enlarged for print
    or a slide, its bar 4-10 px thick and its labels two or three times as tall."""
    def frame_of(i: int) -> tuple[np.ndarray, dict]:
        rgb, truth = make(i, **keywords)
        factor = 2.0 + 0.5 * (i % 3)
        big = cv2.resize(rgb.astype(np.float32), None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        return grey(np.clip(big, 0, 255).round()), {**truth, "bar_px": truth["bar_px"] * factor,
                                                     "nm_per_px": truth["nm_per_px"] / factor, "enlarged": factor}
    return frame_of


def in_grey(make, **keywords):
    """A generator of RGB figures (``make(i, **keywords)`` -> (RGB, truth)) as one of grey
    frames, ``frame_of(i)`` -> (grey image, truth): what the test and bench sets read."""
    def frame_of(i: int) -> tuple[np.ndarray, dict]:
        rgb, truth = make(i, **keywords)
        return grey(rgb), truth
    return frame_of
