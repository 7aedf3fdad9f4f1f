"""Draw realistic scale bars onto synthetic microscope images (test data only).

The reader in ``scale.py`` is only as trustworthy as the variety it was tested
on, so this renderer imitates the annotation styles that real acquisition
software burns into images:

* ``band``  - black band across the bottom, white bar and label (Gatan / JEOL);
* ``box``   - white rectangle over the image, black bar and label;
* ``bare``  - white bar and label straight over the image content;
* ``fei``   - FEI/Thermo databar: a black strip *appended below* the image with
  framed text cells and a bar split by its label, with end ticks;
* ``dataline`` - an SEM data line appended below the image: one row of fields
  ("x2,000  10 µm ▬▬  WD:28.0mm  8kV"), the bar beside its label among them;
* ``zeiss`` - a Zeiss-style two-row databar: a tiny bar under its label in the
  first cell, "EHT = 10.00 kV", "WD = 5.6 mm", "Mag = 161 X"... in the others,
  light on dark or dark on light.

``bare`` puts the label above or beside the bar at random, or as asked (``beside``).

Conventions shared with the reader: boxes are half-open ``(x0, y0, x1, y1)``
(``img[y0:y1, x0:x1]``); a bar's length is the summed coverage of its pixels
along its length, tip to tip, except for ``fei`` bars, whose length runs from
end-tick centre to end-tick centre (as on a real Helios databar).  Ends and ticks
are drawn anti-aliased with exact sub-pixel coverage, so ``bar_px`` is exactly
``bar_nm / nm_per_px``, not rounded to whole pixels as most software does.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

STYLES = ("band", "box", "bare", "fei", "dataline", "zeiss")
FONT_ROOT = Path("/usr/share/fonts/truetype")
FONTS = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSerif-Bold",
    "DejaVuSansMono", "DejaVuSansCondensed", "hershey_simplex", "hershey_duplex",
)
# Fonts of the Debian packages fonts-liberation, fonts-freefont-ttf and fonts-noto-core,
# for the scale-bar corpus: serif and sans, bold and regular, and italic (its µ).
MORE_FONTS = (
    "LiberationSerif-Bold", "LiberationSerif-Regular", "LiberationSans-Regular", "LiberationSans-Bold",
    "FreeSerifBold", "FreeSans", "NotoSerif-Bold", "NotoSans-Regular", "LiberationMono-Regular",
)
ITALIC_FONTS = ("LiberationSerif-Italic", "NotoSans-Italic", "FreeSerifItalic", "DejaVuSans-Oblique")
_HERSHEY = {"hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX, "hershey_duplex": cv2.FONT_HERSHEY_DUPLEX}
Box = tuple[int, int, int, int]


def _nice_label(bar_nm: float, rng: np.random.Generator, ascii_only: bool) -> str:
    """Format a bar length the way instruments do, with an occasional Å, pm or 0.x µm."""
    mu, ang = ("u", "A") if ascii_only else ("µ", "Å")
    if bar_nm >= 1000 or (bar_nm >= 100 and rng.random() < 0.2):
        value, unit = bar_nm / 1000, mu + "m"
    elif bar_nm < 1:
        value, unit = bar_nm * 1000, "pm"
    elif bar_nm < 10 and rng.random() < 0.3:
        value, unit = bar_nm * 10, ang
    else:
        value, unit = bar_nm, "nm"
    sep = "" if rng.random() < 0.15 else " "
    return f"{value:g}{sep}{unit}"


def pick_bar(width: int, nm_per_px: float, rng: np.random.Generator,
             span: tuple[float, float] = (0.1, 0.25)) -> float:
    """A 1-2-5 x 10^k nm value whose bar covers ``span`` of the width (exists if span >= 2.5x)."""
    choices = [m * 10.0 ** k for k in range(-4, 9) for m in (1, 2, 5)
               if span[0] * width <= m * 10.0 ** k / nm_per_px <= span[1] * width]
    return float(rng.choice(choices))


@lru_cache(maxsize=None)
def font_path(font: str) -> Path:
    """The .ttf file of a font named by its file stem, in any Debian font package's folder."""
    found = sorted(FONT_ROOT.glob(f"*/{font}.ttf"))
    if not found:
        raise FileNotFoundError(f"font {font!r} not found under {FONT_ROOT} (make system-deps installs the font packages)")
    return found[0]


@lru_cache(maxsize=64)
def _truetype(font: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(font)), size)


def render_text(text: str, font: str, digit_h: float) -> np.ndarray:
    """Anti-aliased coverage mask in [0, 1] of ``text`` whose digits are ``digit_h`` px tall."""
    if font in _HERSHEY:
        face, scale = _HERSHEY[font], digit_h / 21.0
        thick = max(1, round(digit_h / 9))
        (w, h), base = cv2.getTextSize(text, face, scale, thick)
        canvas = np.zeros((h + base + 4 * thick, w + 4 * thick), np.uint8)
        cv2.putText(canvas, text, (2 * thick, h + 2 * thick), face, scale, 255, thick, cv2.LINE_AA)
    else:
        ratio = _truetype(font, 100).getbbox("0")
        size = max(6, round(digit_h * 100 / (ratio[3] - ratio[1])))
        f = _truetype(font, size)
        x0, y0, x1, y1 = f.getbbox(text)
        img = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
        ImageDraw.Draw(img).text((2 - x0, 2 - y0), text, fill=255, font=f)
        canvas = np.asarray(img)
    ys, xs = np.nonzero(canvas)
    return canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float64) / 255.0


def _paint(img: np.ndarray, cover: np.ndarray, x: int, y: int, value: float) -> None:
    """Alpha-blend a coverage mask at (x, y), clipped to the image."""
    h, w = cover.shape
    ya, yb, xa, xb = max(y, 0), min(y + h, img.shape[0]), max(x, 0), min(x + w, img.shape[1])
    a = cover[ya - y:yb - y, xa - x:xb - x]
    img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - a) + value * a


def _bar(img: np.ndarray, xs: float, length: float, y: int, thick: int, value: float,
         gap: tuple[int, int] | None = None) -> Box:
    """Draw a bar covering exactly [xs, xs+length) in x, optionally with a blank gap."""
    x0, x1 = math.floor(xs), math.ceil(xs + length)
    cols = np.arange(x0, x1)
    cover = np.clip(np.minimum(cols + 1, xs + length) - np.maximum(cols, xs), 0, 1)
    if gap is not None:
        cover[(cols >= gap[0]) & (cols < gap[1])] = 0
    _paint(img, np.tile(cover, (thick, 1)), x0, y, value)
    return x0, y, x1, y + thick


def _layout(img: np.ndarray, x: int, y: int, length: float, thick: int, text: np.ndarray,
            beside: bool, value: float, frac: float) -> tuple[Box, Box]:
    """Bar (sub-pixel start ``x + frac``) with its label beside it or centred above it."""
    th, tw = text.shape
    pad = max(2, round(0.4 * th))
    if beside:
        by = y + max(0, (th - thick) // 2)
        bar = _bar(img, x + frac, length, by, thick, value)
        _paint(img, text, bar[2] + pad, y + max(0, (thick - th) // 2), value)
        content = (x, y, bar[2] + pad + tw, y + max(th, thick))
    else:  # x is the content's left edge: the wider of bar and label starts there
        shift = max(0, round((tw - length) / 2))
        tx = x + shift + round((length - tw) / 2)
        _paint(img, text, tx, y, value)
        bar = _bar(img, x + shift + frac, length, y + th + pad, thick, value)
        content = (min(bar[0], tx), y, max(bar[2], tx + tw), bar[3])
    return bar, content


def _content_size(length: float, thick: int, text: np.ndarray, beside: bool) -> tuple[int, int]:
    th, tw = text.shape
    pad = max(2, round(0.4 * th))
    if beside:
        return math.ceil(length) + 1 + pad + tw, max(th, thick)
    return max(math.ceil(length) + 1, tw), th + pad + thick


def _append(img: np.ndarray, strip: np.ndarray, bar: Box) -> tuple[np.ndarray, Box, Box]:
    """The image with a databar strip appended below it: (image, bar box, strip box) in its coordinates."""
    h, w = img.shape
    return np.vstack([img, strip]), (bar[0], bar[1] + h, bar[2], bar[3] + h), (0, h, w, h + strip.shape[0])


def _fei_strip(img: np.ndarray, rng: np.random.Generator, font: str, length: float,
               label: str, white: float) -> tuple[np.ndarray, Box, Box]:
    """Append an FEI-like databar below the image; returns (image, bar box, strip box)."""
    h, w = img.shape
    dh = max(6.0, h * rng.uniform(0.014, 0.02))
    cell_h = round(dh * 1.9)
    strip = np.zeros((2 * cell_h + 3, w))
    strip[0, :] = white
    cells = ["HV|5.00 kV", "mag|%d kx" % rng.integers(20, 900), "HFW|%.2f µm" % rng.uniform(0.1, 9),
             "det|HAADF", "date|%02d/%02d/20%02d" % tuple(rng.integers(1, 13, 3))]
    cell_w = max(8, round((w - length * 1.25) / len(cells)))
    x = 0
    for c in cells:
        if x + cell_w > w - length * 1.2:
            break
        for row, part in enumerate(c.split("|")):
            t = _strip_text(part, font, dh)
            t = t[:, : max(1, cell_w - 6)]
            _paint(strip, t, x + 3, 1 + row * (cell_h + 1) + (cell_h - t.shape[0]) // 2, white)
        x += cell_w
        strip[:, x] = white
    x0 = x + max(3, round(0.08 * (w - x - length)))
    strip[cell_h + 1, x:] = white
    thick = max(2, round(dh / 3))
    t = render_text(label, font, dh)
    if t.shape[1] > 0.45 * length:  # keep both bar halves clearly longer than the label
        t = render_text(label, font, dh * 0.45 * length / t.shape[1])
    gx0 = round(x0 + length / 2 - t.shape[1] / 2) - round(0.5 * dh)
    gx1 = gx0 + t.shape[1] + 2 * round(0.5 * dh)
    by = 1 + (cell_h - thick) // 2
    # FEI convention (checked on a real Helios databar): the length is measured
    # between the centres of the 1-px end ticks; the bar tips stick out 1.5 px.
    xs = x0 + 2 + rng.uniform(0, 1)
    bar = _bar(strip, xs - 1.5, length + 3, by, thick, white, gap=(gx0, gx1))
    for tx in (xs, xs + length):
        tick = np.clip(1 - np.abs(np.arange(math.floor(tx) - 1, math.floor(tx) + 2) + 0.5 - tx), 0, 1)
        _paint(strip, np.tile(tick, (thick + 2, 1)), math.floor(tx) - 1, by - 1, white)
    _paint(strip, t, gx0 + round(0.5 * dh), 1 + (cell_h - t.shape[0]) // 2, white)
    tag = render_text("psdwatch synthetic", font, dh)[:, : max(1, w - x - 6)]
    _paint(strip, tag, x + 3, cell_h + 2 + (cell_h - tag.shape[0]) // 2, white)
    return _append(img, strip, bar)


def _strip_text(text: str, font: str, height: float) -> np.ndarray:
    """A databar field: Hershey fonts have no µ, so they write u."""
    return render_text(text.replace("µ", "u") if font in _HERSHEY else text, font, height)


def _dataline_strip(img: np.ndarray, rng: np.random.Generator, font: str, length: float,
                    label: str, white: float) -> tuple[np.ndarray, Box, Box]:
    """Append an SEM data line: magnification, label and bar (either order), WD, kV."""
    h, w = img.shape
    dh = max(7.0, h * rng.uniform(0.016, 0.026))
    strip_h = round(dh * 2.2)
    light = bool(rng.random() < 0.3)  # some software writes black on a white line
    paper, ink = (white, 0.0) if light else (0.0, white)
    strip = np.full((strip_h, w), paper)
    fields = [_strip_text(f, font, dh) for f in (
        str(rng.choice(["%dx" % rng.integers(20, 900), "x%s" % f"{rng.integers(1, 200) * 1000:,}",
                        "SEI"])),
        label)]
    after = [_strip_text(f, font, dh) for f in (
        "WD:%.1fmm" % rng.uniform(3, 30), "%dkV" % rng.integers(1, 31))]
    gap = round(rng.uniform(0.5, 2.5) * dh)  # two spaces to a wide tab
    thick = max(2, round(dh * rng.uniform(0.2, 0.35)))
    bar_first = bool(rng.random() < 0.5)
    x = round(rng.uniform(0.5, 2) * dh)
    mid = strip_h // 2
    bar: Box = (0, 0, 0, 0)

    def put(t: np.ndarray, x: int) -> int:
        _paint(strip, t, x, mid - t.shape[0] // 2, ink)
        return x + t.shape[1]

    x = put(fields[0], x) + gap
    pad = max(3, round(0.5 * dh))
    if bar_first:
        bar = _bar(strip, x + rng.uniform(0, 1), length, mid - thick // 2, thick, ink)
        x = put(fields[1], bar[2] + pad) + gap
    else:
        x = put(fields[1], x) + pad
        bar = _bar(strip, x + rng.uniform(0, 1), length, mid - thick // 2, thick, ink)
        x = bar[2] + gap
    for t in after:
        if x + t.shape[1] < w - 2:
            x = put(t, x) + gap
    return _append(img, strip, bar)


def _zeiss_strip(img: np.ndarray, rng: np.random.Generator, font: str, length: float,
                 label: str, white: float) -> tuple[np.ndarray, Box, Box]:
    """Append a Zeiss-style databar: label over a tiny bar in the first cell, fields in the others."""
    h, w = img.shape
    dh = max(7.0, h * rng.uniform(0.013, 0.02))
    row_h = round(dh * 1.8)
    strip = np.zeros((2 * row_h + 4, w))
    light = bool(rng.random() < 0.4)
    paper, ink = (white, 0.0) if light else (0.0, white)
    strip[:] = paper
    strip[0, :] = ink  # the frame line above the databar
    t = _strip_text(label, font, dh)
    thick = max(2, round(dh * 0.3))
    x0 = round(rng.uniform(0.6, 1.5) * dh)
    cell = max(math.ceil(length), t.shape[1])
    _paint(strip, t, x0 + (cell - t.shape[1]) // 2, 2 + (row_h - t.shape[0]) // 2 + 1, ink)
    bar = _bar(strip, x0 + (cell - length) / 2 + rng.uniform(0, 1), length,
               row_h + 2 + (row_h - thick) // 2, thick, ink)
    x = x0 + cell + round(2 * dh)
    columns = [("EHT = %.2f kV" % rng.uniform(1, 30), "WD = %.1f mm" % rng.uniform(2, 12)),
               ("Mag = %d X" % rng.integers(50, 500000), "Signal A = %s" % rng.choice(["SE2", "InLens", "BSD"])),
               ("Date :%d %s 20%02d" % (rng.integers(1, 29), rng.choice(["Jan", "Mar", "Oct"]), rng.integers(10, 26)),
                "Time :%02d:%02d:%02d" % tuple(rng.integers(0, 60, 3)))]
    for col in columns:
        texts = [_strip_text(c, font, dh) for c in col]
        if x + max(tt.shape[1] for tt in texts) >= w - 2:
            break
        for row, tt in enumerate(texts):
            _paint(strip, tt, x, 2 + row * row_h + (row_h - tt.shape[0]) // 2, ink)
        x += max(tt.shape[1] for tt in texts) + round(2.5 * dh)
    return _append(img, strip, bar)


def draw_scale_bar(image: np.ndarray, nm_per_px: float, style: str, rng: np.random.Generator,
                   font: str | None = None, beside: bool | None = None) -> tuple[np.ndarray, dict]:
    """Burn a scale bar into ``image`` (2-D unsigned integer) and return (new image, truth).

    White is the dtype's maximum, black 0.  The value is a 1-2-5 number of nm whose
    bar spans 10-25 % of the width (15-38 % for ``fei``, whose label sits inside the bar;
    6-16 % in a ``dataline``, 4-10 % in a ``zeiss`` databar).  Truth: style, label,
    font, bar_nm, bar_px (exact), bar_bbox and annotation_bbox (half-open).  ``fei``,
    ``dataline`` and ``zeiss`` return a taller image: their strip is appended.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}")
    white = float(np.iinfo(image.dtype).max)
    font = font or str(rng.choice(FONTS))
    h, w = image.shape
    span = {"fei": (0.15, 0.38), "dataline": (0.06, 0.16), "zeiss": (0.04, 0.1)}.get(style, (0.1, 0.25))
    bar_nm = pick_bar(w, nm_per_px, rng, span)
    length = bar_nm / nm_per_px
    label = _nice_label(bar_nm, rng, ascii_only=font in _HERSHEY)
    img = image.astype(np.float64)
    size = min(h, w)
    strips = {"fei": _fei_strip, "dataline": _dataline_strip, "zeiss": _zeiss_strip}
    if style in strips:
        img, bar, ann = strips[style](img, rng, font, length, label, white)
    else:
        text = render_text(label, font, size * rng.uniform(0.022, 0.04))
        thick = max(2, round(size * rng.uniform(0.006, 0.014)))
        beside = bool(rng.random() < 0.4) if beside is None else beside
        cw, ch = _content_size(length, thick, text, beside)
        margin = round(size * rng.uniform(0.02, 0.04))
        pad = max(3, round(0.5 * text.shape[0]))
        right = bool(rng.random() < 0.5)
        frac = rng.uniform(0, 1)
        fg = 0.0 if style == "box" else white
        if style == "band":
            band_h = ch + 2 * pad
            img[h - band_h:, :] = 0
            x = w - margin - cw if right else margin
            bar, content = _layout(img, x, h - band_h + pad, length, thick, text, beside, fg, frac)
            ann = (0, h - band_h, w, h)
        else:
            top = style == "box" and rng.random() < 0.1
            x = w - margin - cw - pad if right else margin + pad
            y = margin + pad if top else h - margin - pad - ch
            if style == "box":
                img[y - pad:y + ch + pad, x - pad:x + cw + pad] = white
            bar, content = _layout(img, x, y, length, thick, text, beside, fg, frac)
            grow = pad if style == "box" else 2
            ann = (content[0] - grow, content[1] - grow, content[2] + grow, content[3] + grow)
    out = np.clip(np.rint(img), 0, white).astype(image.dtype)
    truth = {"style": style, "label": label, "font": font, "bar_nm": bar_nm, "bar_px": length,
             "bar_bbox": tuple(int(v) for v in bar), "annotation_bbox": tuple(int(v) for v in ann)}
    return out, truth
