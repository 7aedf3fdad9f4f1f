"""Find the scale bar burned into a microscope image and read its label with Tesseract.

Why it works this way:
* Software draws bars and labels in the extreme grey values, so the image is scaled
  by min/max, not percentiles: the bar stays at exactly 1.0 (or 0.0) and is told from
  bright particles by shape - runs of equal extent on consecutive rows, contrasting
  rows above and below, not the edge of a larger region.  Both polarities are searched.
* Bars split by their label (FEI databar) are re-joined when two similar collinear
  segments have text between them.
* The label is found geometrically (thin-stroked, glyph-sized blobs of the bar's colour
  in a line next to the bar), so Tesseract only sees that line: three scales of it
  stacked in ONE run per candidate, because process start-up dominates OCR time.
* Length is the summed pixel coverage along the bar, tip to tip (anti-aliased end
  pixels count by their intensity), or tick centre to tick centre when the bar has
  1-px end ticks (FEI convention, checked on a real Helios databar: 148 px = 500 µm).
* Nothing is guessed.  A reading is trusted only if the OCR text agrees with the
  geometry: glyph and decimal-point counts, the shape of the µ (Tesseract often says
  'p', a 10^6 error), a 1-2-5 value, straight bar ends, a plausible nm/px and no
  disagreeing candidate; otherwise confident=False with ``reasons``.
Boxes are half-open (x0, y0, x1, y1): ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytesseract
from scipy.sparse.csgraph import connected_components

from .bar_find import Bar as _Bar
from .bar_find import find_bars, half_contrast_length

Box = tuple[int, int, int, int]


class _TesseractEnv(Mapping):
    """This process's environment, live, with OMP_THREAD_LIMIT=1 unless set.

    Tesseract's OpenMP threads contend for two cores over a one-line image: one
    thread halved its time (0.3 s instead of 0.5-0.7 s per frame, measured). Only
    the Tesseract child gets the limit; the network's OpenMP pool in this process
    keeps its threads, so os.environ itself is not changed."""

    def _env(self) -> dict[str, str]:
        return {"OMP_THREAD_LIMIT": "1", **os.environ}

    def __getitem__(self, key: str) -> str:
        return self._env()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env())

    def __len__(self) -> int:
        return len(self._env())


pytesseract.pytesseract.environ = _TesseractEnv()  # the env pytesseract hands to its subprocess
_LABEL = re.compile(r"^([0-9SOoIl|]+(?:[.,][0-9SOoIl|]+)?)\s*([A-Za-zµÅ]+)$")
_DIGITS = str.maketrans("SOoIl|", "500111")  # letters Tesseract puts in numbers
_MICRO = ("um", "µm", "ym", "yum", "yµm")  # how Tesseract spells µm
_UNIT = {**{u: "µm" for u in _MICRO}, "nm": "nm", "pm": "pm", "Å": "Å", "A": "Å", "mm": "mm"}
_NM = {"nm": 1.0, "µm": 1e3, "pm": 1e-3, "Å": 0.1, "mm": 1e6}
_NICE = (1.0, 2.0, 2.5, 5.0)
_SOFT = ("low OCR confidence", "unusual label spelling", "glyph shape unclear")  # doubts lifted when two scales agree
# (glyph height, interpolation, shear): the last undoes an italic slant (Zeiss labels)
_VARIANTS = ((40, cv2.INTER_CUBIC, 0.0), (28, cv2.INTER_LINEAR, 0.0), (56, cv2.INTER_LINEAR, 0.0),
             (40, cv2.INTER_CUBIC, 0.25))
_MAX_OCR, _MIN_CONF = 5, 50.0
# Words before a number that make it another field of a databar, not the bar's label.
_FIELDS = re.compile(r"(?i)^(wd|hfw|eht|mag|hv|fov|width|det|spot|pixel|dwell|curr|tilt|[^=:]*[=:])$")


@dataclass
class ScaleBar:
    length_px: float
    value: float
    unit: str
    nm: float
    nm_per_px: float
    text: str
    bar_bbox: Box
    exclude_bbox: Box
    confident: bool
    reasons: tuple[str, ...] = field(default=())


@dataclass
class _Label:
    soft: np.ndarray  # ink coverage in [0, 1] of the line's glyphs only
    ink: np.ndarray   # the glyphs' pixels
    box: Box          # image coordinates
    n_glyphs: tuple[int, int]  # lower and upper bound of the glyph count (dots excluded)
    lh: int           # median glyph height
    n_dots: int       # small blobs on the baseline: decimal points
    side: str = "over"  # where the line is: "over" (above, below, in the gap) the bar, "left" or "right" of it
    bar_x: tuple[float, float] = (0.0, 0.0)  # the bar's ends in the line's columns
    spoilers: tuple[tuple[float, float, str], ...] = ()  # column spans of cut glyphs and blobs touching the line


def find_scale_bar(image: np.ndarray) -> ScaleBar | None:
    """Locate and read the scale bar; None when no bar with a readable label is found."""
    img = np.nan_to_num(np.asarray(image, dtype=np.float32))
    if img.ndim != 2 or min(img.shape) < 32 or img.max() <= img.min():
        return None
    img = (img - img.min()) / (img.max() - img.min())
    cands = [(b, lab) for b in find_bars(img) for lab in _text_lines(img, b)]
    cands.sort(key=lambda c: -(c[0].y0 / img.shape[0] + 0.3 * (c[0].gap is not None)))  # bottom first
    reads = []
    for bar, label in cands[:_MAX_OCR]:
        if (reading := _read(_ocr(label), label)) is None:
            continue
        text, value, unit, why = reading
        length, spread = _measure(img, bar)
        if spread > 0.5:
            why.append(f"ragged bar ends (row spread {spread:.2f} px)")
        if bar.gap is not None and _end_ticks(img, bar) is None:
            why.append("split bar without clear end ticks")  # FEI measures tick to tick, not tip to tip
        nm = value * _NM[unit]
        if not 4e-3 <= nm / length <= 1e5:  # finer than 4 pm/px or coarser than 0.1 mm/px
            why.append(f"implausible {nm / length:.3g} nm/px")
        reads.append(ScaleBar(length, value, unit, nm, nm / length, text, (bar.x0, bar.y0, bar.x1, bar.y1),
                              _exclusion(img, bar, label.box), not why, tuple(why)))
    if not reads:
        return None
    best = max(reads, key=lambda r: r.confident)
    if any(abs(r.nm_per_px / best.nm_per_px - 1) > 0.01 for r in reads):
        best.confident, best.reasons = False, best.reasons + ("several candidates disagree",)
    return best


def _surface(img: np.ndarray, bar: _Bar) -> tuple[float, float]:
    """Grey level of what the bar is drawn on (band, box, strip or image) and its spread."""
    fg = bar.fg
    v = np.concatenate([img[max(0, bar.y0 - 4):max(0, bar.y0 - 1), bar.x0:bar.x1].ravel(),
                        img[bar.y1 + 1:bar.y1 + 4, bar.x0:bar.x1].ravel()])
    if bar.soft and v.size:  # a soft bar's grey is not an extreme: cut halfway to the surface
        v = v[np.abs(v - fg) > 0.5 * abs(fg - float(np.median(v)))]
    else:
        v = v[np.abs(v - fg) > 0.3]
    if not v.size:
        return 1.0 - fg, 0.0
    lo, mid, hi = np.percentile(v, (10, 50, 90))
    return float(mid), float(hi - lo)


def _text_lines(img: np.ndarray, bar: _Bar) -> list[_Label]:
    """The nearest line of thin-stroked, glyph-sized blobs of the bar's colour on each side.

    One over (above, below or in the gap), one left and one right of the bar, because
    in a data line the bar has fields on both sides ("x2,000  WD 4.9 ▬▬ 2 µm") and the
    nearer may be the wrong one; the reader keeps the line whose words hold a label
    in the right place.
    """
    h, w = img.shape
    L, t = bar.length, bar.thick
    fg, (bg, spread) = bar.fg, _surface(img, bar)
    dx, dy = min(2.2 * L, 0.35 * w), min(0.8 * L, 0.12 * h) + 2 * t
    wx0, wx1 = max(0, int(bar.x0 - dx)), min(w, int(bar.x1 + dx))
    wy0, wy1 = max(0, int(bar.y0 - dy)), min(h, int(bar.y1 + dy))
    soft = np.clip((img[wy0:wy1, wx0:wx1] - bg) / (fg - bg), 0, 1)
    win = (soft > (0.5 if spread < 0.1 * abs(fg - bg) else 0.6)).astype(np.uint8)  # stricter over texture
    for sx0, sx1 in bar.pieces():  # the bar and its end ticks are not text
        win[max(0, bar.y0 - wy0 - 1):bar.y1 - wy0 + 1, max(0, sx0 - wx0 - 1):sx1 - wx0 + 1] = 0
    n, lab, st, _ = cv2.connectedComponentsWithStats(win, connectivity=8)
    x, y, cw, ch, area = st[:, 0], st[:, 1], st[:, 2], st[:, 3], st[:, 4]
    inner = (x > 0) & (y > 0) & (x + cw < win.shape[1]) & (y + ch < win.shape[0])
    glyph = inner & (ch >= 5) & (ch <= max(8, 0.9 * L)) & (cw <= 4 * ch) & (area >= 0.12 * cw * ch)
    glyph[0] = False
    for i in np.nonzero(glyph)[0]:  # strokes are thin, particles are solid
        sub = (lab[y[i]:y[i] + ch[i], x[i]:x[i] + cw[i]] == i).astype(np.uint8)
        glyph[i] = cv2.distanceTransform(np.pad(sub, 1), cv2.DIST_L2, 3).max() <= max(2.0, 0.3 * ch[i])
    idx = np.nonzero(glyph)[0]
    link = np.zeros((len(idx), len(idx)), bool)
    for k, i in enumerate(idx):  # same line: vertical overlap, similar height, small gap
        for m, j in enumerate(idx[k + 1:], k + 1):
            ov = min(y[i] + ch[i], y[j] + ch[j]) - max(y[i], y[j])
            gapx = max(x[i], x[j]) - min(x[i] + cw[i], x[j] + cw[j])
            link[k, m] = (ov >= 0.5 * min(ch[i], ch[j]) and gapx <= 1.2 * max(ch[i], ch[j])
                          and min(ch[i], ch[j]) >= 0.4 * max(ch[i], ch[j]))
    ncomp, comp = connected_components(link, directed=False)
    bx0, bx1, by0, by1 = bar.x0 - wx0, bar.x1 - wx0, bar.y0 - wy0, bar.y1 - wy0
    near = []
    for mem in (idx[comp == c] for c in range(ncomp)):
        if len(mem) < 2:
            continue
        lx0, ly0, lx1, ly1 = x[mem].min(), y[mem].min(), (x + cw)[mem].max(), (y + ch)[mem].max()
        lh = int(np.median(ch[mem]))
        if min(lx1, bx1) - max(lx0, bx0) >= 0.5 * (lx1 - lx0) or (lx0 < bx0 and lx1 > bx1):
            d, side = max(by0 - ly1, ly0 - by1, 0), "over"  # above, below or in the gap
        elif min(ly1, by1 + lh) - max(ly0, by0 - lh) > 0:  # beside
            d, side = max(bx0 - lx1, lx0 - bx1, 0), "left" if lx1 <= bx0 + 0.5 * lh else "right"
        else:
            continue
        if d <= 2 * lh:
            near.append((d / lh, (lx0, ly0, lx1, ly1, lh), side))
    labels = []
    nearest = {}
    for c in sorted(near, key=lambda c: c[0]):
        nearest.setdefault(c[2], c)
    for _, (lx0, ly0, lx1, ly1, lh), side in sorted(nearest.values(), key=lambda c: c[0]):
        px, py = max(2, int(0.25 * lh)), max(2, int(0.35 * lh))
        cx, cy = x + cw / 2, y + ch / 2
        small = ch < 0.45 * lh  # dots and Å rings inside the line, not specks beside it
        sel = inner & (cx >= lx0 - px) & (cx <= lx1 + px) & (cy >= ly0 - py) & (cy <= ly1 + py) & (ch <= 1.6 * lh)
        sel &= glyph | (small & (cx > lx0) & (cx < lx1) & (cy <= ly1) & (area >= max(1.0, (0.12 * lh) ** 2)))
        sel[0] = False
        cy0, cx0 = max(0, ly0 - py), max(0, lx0 - px)
        # What may spoil a reading: a glyph cut by the image edge beside the line, and
        # a blob of the label's colour that is no glyph yet overlaps the line (a
        # particle under a letter, or a letter merged with one and dropped).
        edge = ((x + wx0 == 0) | (x + cw + wx0 == w) | (y + wy0 == 0) | (y + ch + wy0 == h)) & (ch <= 1.6 * lh)
        edge &= (cw <= 3 * lh) & (np.minimum(y + ch, ly1) - np.maximum(y, ly0) >= 0.3 * lh)
        inside = np.bincount(lab[ly0:ly1, lx0:lx1].ravel(), minlength=n)  # pixels in the line's box
        touch = ~sel & ~edge & (ch >= 0.45 * lh) & (inside >= max(4.0, 0.1 * lh * lh))
        edge[0] = touch[0] = False
        spoilers = tuple((float(x[i] - cx0), float(x[i] + cw[i] - cx0), why) for why, m in (
            ("label touches the image edge", edge & (x < lx1 + 1.5 * lh) & (x + cw > lx0 - 1.5 * lh)),
            ("something of the label's colour touches it", touch)) for i in np.nonzero(m)[0])
        spoilers += tuple((a - cx0, b - cx0, "a faint glyph in or beside the label")
                          for a, b in _faint_glyphs(soft, np.isin(lab, np.nonzero(sel)[0]), (lx0, ly0, lx1, ly1), lh))
        keep = np.isin(lab[cy0:ly1 + py, cx0:lx1 + px], np.nonzero(sel)[0])
        line_soft = _around(soft[cy0:ly1 + py, cx0:lx1 + px], keep)
        box = (int(lx0 + wx0), int(ly0 + wy0), int(lx1 + wx0), int(ly1 + wy0))
        counts, n_dots = _glyph_stats(line_soft, keep, lh)
        labels.append(_Label(line_soft, keep, box, counts, lh, n_dots, side,
                             (float(bx0 - cx0), float(bx1 - cx0)), spoilers))
    return labels


def _faint_glyphs(soft: np.ndarray, line_ink: np.ndarray, line: Box, lh: int) -> list[tuple[float, float]]:
    """Column spans of glyph-tall strokes in or just beside the line that its ink left out.

    A thin '1' or '0' shrunk with its figure keeps half its contrast and falls below
    the line's ink threshold: the line is then read '10 nm' for '100 nm', and every
    check agrees with the shortened text."""
    lx0, ly0, lx1, ly1 = line
    a, b = max(0, int(lx0 - 1.2 * lh)), min(soft.shape[1], int(lx1 + 1.2 * lh))  # a letter space
    n, lab, st, _ = cv2.connectedComponentsWithStats((soft[ly0:ly1, a:b] > 0.35).astype(np.uint8), connectivity=8)
    kept = np.bincount(lab.ravel(), weights=line_ink[ly0:ly1, a:b].ravel(), minlength=n)
    return [(float(a + st[i, 0]), float(a + st[i, 0] + st[i, 2])) for i in range(1, n)
            if 0.6 * lh <= st[i, 3] <= 1.8 * lh and st[i, 2] <= 1.2 * lh  # glyph-sized (digits over x-height),
            and st[i, 4] <= 0.6 * st[i, 2] * st[i, 3] and kept[i] < 0.5 * st[i, 4]]  # stroked, left out


def _around(soft: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The coverage of these glyphs only: their pixels and the anti-aliased rim around them."""
    return soft * (cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)


def _glyph_stats(soft: np.ndarray, ink: np.ndarray, lh: int) -> tuple[tuple[int, int], int]:
    """Glyph counts bracketing the truth, and the decimal points on the baseline.

    At a low threshold thin arches (n, m) hold but neighbours may touch; at the
    line's threshold glyphs stay apart but may break: the truth lies between.
    """
    counts = []
    for m in (soft > 0.3, ink):
        spans = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)[2][1:]
        count, right = 0, -1
        for a, b in sorted((int(s[0]), int(s[0] + s[2])) for s in spans if s[3] >= 0.45 * lh):
            count, right = count + (a > right), max(right, b)  # x-overlapping pieces: one glyph
        counts.append(count)
    st = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)[2][1:]
    small = st[:, 3] < 0.45 * lh
    if small.all():
        return (counts[0], counts[1]), 0
    base = np.median((st[:, 1] + st[:, 3])[~small])
    dots = small & (np.abs(st[:, 1] + st[:, 3] - base) <= 0.2 * lh + 1) & (st[:, 2] <= 0.35 * lh)
    return (counts[0], counts[1]), int(dots.sum())


def _token_label(label: _Label, x0: float, x1: float) -> _Label:
    """The part of a line that holds the label's words (columns x0..x1), with its own counts."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(label.ink.astype(np.uint8), connectivity=8)
    centre = st[:, 0] + st[:, 2] / 2
    mine = [i for i in range(1, n) if x0 - 0.15 * label.lh <= centre[i] <= x1 + 0.15 * label.lh]
    ink = np.isin(lab, mine)
    soft = _around(label.soft, ink)
    counts, n_dots = _glyph_stats(soft, ink, label.lh)
    spoil = tuple(s for s in label.spoilers if s[0] < x1 + 1.5 * label.lh and s[1] > x0 - 1.5 * label.lh)
    return _Label(soft, ink, label.box, counts, label.lh, n_dots, label.side, label.bar_x, spoil)


def _ocr(label: _Label) -> list[list[tuple[float, float, str, float]]]:
    """The line's words at each scale variant, from one Tesseract run: (x0, x1, text, confidence).

    Word columns are in the line's own pixels, so a word can be matched to its glyphs.
    """
    ys = np.nonzero(label.ink.any(axis=1))[0]
    tiles, slots, scales, top = [], [], [], 0
    for height, interp, shear in _VARIANTS:
        s = float(np.clip(height / max(1, ys[-1] - ys[0] + 1), 0.2, 8.0))
        big = cv2.resize(label.soft.astype(np.float32), None, fx=s, fy=s,
                         interpolation=interp if s > 1 else cv2.INTER_AREA)
        if shear:  # rows shift left by shear x their height above the bottom; columns stay aligned at mid-height
            bh, bw = big.shape
            m = np.float32([[1, shear, -shear * bh / 2], [0, 1, 0]])
            big = cv2.warpAffine(big, m, (bw, bh), flags=cv2.INTER_LINEAR, borderValue=0)
        tiles.append(np.clip(255 - 255 * big, 0, 255).astype(np.uint8))
        scales.append(big.shape[1] / label.soft.shape[1])
    width = max(t.shape[1] for t in tiles) + 40
    for i, t in enumerate(tiles):
        tiles[i] = cv2.copyMakeBorder(t, 20, 20, 20, width - 20 - t.shape[1], cv2.BORDER_CONSTANT, value=255)
        slots.append((top, top + tiles[i].shape[0]))
        top += tiles[i].shape[0]
    d = pytesseract.image_to_data(np.vstack(tiles), config="--psm 6", output_type=pytesseract.Output.DICT)
    words: list[list[tuple[float, float, str, float]]] = [[] for _ in slots]
    for text, conf, wx, ww, wy, wh in zip(d["text"], d["conf"], d["left"], d["width"], d["top"], d["height"]):
        k = next((k for k, (a, b) in enumerate(slots) if a <= wy + wh / 2 < b), None)
        if text.strip() and k is not None:
            words[k].append(((wx - 20) / scales[k], (wx + ww - 20) / scales[k], text.strip(), float(conf)))
    return [sorted(w) for w in words]


def _token(words: list[tuple[float, float, str, float]], label: _Label
           ) -> tuple[str, float, float, float] | None:
    """The words that are the bar's label: a number and a unit, placed where a label goes.

    Over or under the bar the label is centred on it; beside it, it is the word group
    next to the bar.  A value after "WD", "HFW", "=" or ":" is another field.
    """
    found = []
    for i in range(len(words)):
        for j in (i, i + 1):
            if j >= len(words) or not _LABEL.match(_clean(text := " ".join(w[2] for w in words[i:j + 1]))):
                continue
            if i > 0 and _FIELDS.match(words[i - 1][2]):
                continue
            x0, x1 = words[i][0], words[j][1]
            if label.side == "over":
                ok = label.bar_x[0] - 0.1 * (x1 - x0) <= (x0 + x1) / 2 <= label.bar_x[1] + 0.1 * (x1 - x0)
            else:
                ok = j == len(words) - 1 if label.side == "left" else i == 0
            if ok:
                found.append((text, x0, x1, min(w[3] for w in words[i:j + 1])))
    return min(found, key=lambda f: len(f[0].split())) if len(found) == 1 or (
        found and len({f[0].replace(" ", "") for f in found}) == 1) else None


def _read(readings: list[list[tuple[float, float, str, float]]], label: _Label
          ) -> tuple[str, float, str, list[str]] | None:
    """The first scale's reading if nothing is doubtful, else two scales that agree.

    Soft doubts (low confidence, a corrected spelling like 'S00' or 'urn') are lifted
    when two scales give the same value and unit; hard doubts never are.  Any
    scale that reads another value with no hard doubt of its own is a hard doubt
    for all: on a small label '100' and '10' may both pass the glyph count.
    """
    seen: list[tuple[str, float, str, list[str]]] = []
    for words in readings:
        if (token := _token(words, label)) is None:
            continue
        text, x0, x1, conf = token
        part = label if x0 <= 0.5 * label.lh and x1 >= label.ink.shape[1] - 0.5 * label.lh else _token_label(label, x0, x1)
        if (parsed := _parse(text, part)) is None:
            continue
        value, unit, why = parsed
        if conf < _MIN_CONF:
            why.append(f"low OCR confidence {conf:.0f}")
        seen.append((text, value, unit, why))
    plain = lambda ws: all(w.startswith(_SOFT) for w in ws)  # noqa: E731 - no hard doubt
    chosen = next(((i, r) for i, r in enumerate(seen) if not r[3]), None)
    if chosen is None:  # two scales that agree lift their soft doubts
        chosen = next(((i, (t, v, u, [])) for i, (t, v, u, ws) in enumerate(seen) if plain(ws) and any(
            (v2, u2) == (v, u) and plain(ws2) for j, (_, v2, u2, ws2) in enumerate(seen) if j != i)), None)
    if chosen is None:
        return seen[0] if seen else None
    text, value, unit, why = chosen[1]
    others = sorted({f"{v:g} {u}" for _, v, u, ws in seen if (v, u) != (value, unit) and plain(ws)})
    if others:
        why = why + [f"OCR scales disagree: {text!r} and {', '.join(others)}"]
    return text, value, unit, why


_SPECKS = ".:;,'`\""  # punctuation Tesseract makes of a speck after the unit


def _clean(text: str) -> str:
    """One spelling of the micro sign, and no speck read as punctuation after the unit."""
    text = text.strip().replace("μ", "µ").rstrip(_SPECKS)
    return re.sub(r"(?<=[0-9])[,.](?=[A-Za-zµÅ])", " ", text)  # "200,nm": a speck between number and unit


def _parse(text: str, label: _Label) -> tuple[float, str, list[str]] | None:
    """Number + unit, undoing OCR confusions seen on scale bar fonts, checked against the glyphs."""
    m = _LABEL.match(_clean(text))
    if not m:
        return None
    num, raw = m.group(1).translate(_DIGITS).replace(",", "."), m.group(2).replace("rn", "m")
    unit = _UNIT.get(raw, "?m" if raw.endswith("m") and len(raw) <= 3 else None)  # '?m': µ read as w, a...
    if unit is None or num.count(".") > 1 or float(num) <= 0:
        return None
    value, why = float(num), sorted({reason for *_, reason in label.spoilers})
    if (raw not in _UNIT or num != m.group(1).replace(",", ".") or text.strip()[-1:] in _SPECKS
            or re.search(r"[0-9][,.][A-Za-zµμÅ]", text)):
        why.append(f"unusual label spelling {text!r}")
    if unit in ("µm", "pm", "?m"):
        shape = _micro_or_pico(label)
        if shape == "µ" or (shape == "u" and raw == "um"):  # 'u': an ASCII label without µ
            unit = "µm"
        elif shape == "p" and raw == "pm":
            unit = "pm"
        elif shape is None and raw in ("um", "µm"):  # Tesseract does not read a p as u or µ
            why.append("glyph shape unclear, OCR says µ")
        else:
            why.append(f"glyph shape {shape!r} disagrees with OCR {raw!r}")
            unit = "pm" if raw == "pm" else "µm"
    if num.count(".") != label.n_dots or (num[0] == "0" and num[1:2] != "."):
        why.append(f"{label.n_dots} dots on the baseline but OCR text {text!r}")
    if not any(abs(value / 10 ** np.floor(np.log10(value)) - n) < 1e-6 for n in _NICE):
        why.append(f"value {value:g} is not a 1-2-5 number")
    chars, (lo, hi) = len(num.replace(".", "")) + (1 if unit == "Å" else 2), label.n_glyphs
    if not lo - (unit == "Å") <= chars <= hi + (label.lh < 10):  # Å's ring may stand apart
        why.append(f"{lo}-{hi} glyphs but OCR text {text!r}")  # a digit lost or invented
    return value, unit, why


def _micro_or_pico(label: _Label) -> str | None:
    """'µ', 'p', or 'u' (no descender) from the glyph hanging below the baseline; None if unclear.

    A p's bowl is closed and its top joins the stem; a µ is an open u-shape with a solid
    stem below.  On rendered labels in 25 fonts (serif, sans, mono, bold, italic;
    6-60 px) this never called a p 'µ'.
    """
    shape = _shape_below(label, label.ink)
    if shape == "µ" and any(_shape_below(label, label.soft > t) != "µ" for t in (0.35, 0.65)):
        return None  # 'µ' must hold at other ink thresholds too: a p taken for µ is a 10^6 error
    return shape


def _shape_below(label: _Label, ink: np.ndarray) -> str | None:
    """_micro_or_pico's reading of the glyphs in ``ink`` (one threshold of the label)."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    big = [i for i in range(1, n) if st[i, 3] >= 0.45 * label.lh]
    if len(big) < 2:
        return None
    base = float(np.median([st[i, 1] + st[i, 3] for i in big]))
    desc = [i for i in big if st[i, 1] + st[i, 3] - base >= max(1.5, 0.15 * label.lh)]
    if not desc:
        return "u"
    x, y, w, h = st[desc[0], :4]
    if len(desc) > 1 or w > 1.2 * h:
        return None
    if any(st[i, 0] < x + w and st[i, 0] + st[i, 2] > x for i in range(1, n) if i != desc[0]):
        return None  # a piece over the same columns: a p's bowl broken off its stem (italic serif fonts)
    g = (lab[y:y + h, x:x + w] == desc[0]).astype(np.uint8)
    soft, below = label.soft[y:y + h, x:x + w], int(round(base + max(1.0, 0.08 * label.lh))) - y
    tail = np.nonzero(g[below:].any(axis=0))[0]  # a solid left stem, not a blob under an n
    if (not tail.size or tail.max() > 0.5 * w or not g[:below].any()
            or soft[below:][g[below:] > 0].mean() < 0.85 * soft[:below][g[:below] > 0].mean()):
        return None
    loose = (soft > 0.2) & (cv2.dilate(g, np.ones((3, 3), np.uint8)) > 0)
    holes = cv2.connectedComponents(np.pad(~loose, 1, constant_values=True).astype(np.uint8), connectivity=4)[0] - 2
    joined = any(xs.size >= 0.6 * w and (np.diff(xs) == 1).all()  # a top row spanning the glyph
                 for xs in (np.nonzero(r)[0] for r in loose[: max(2, int(round(0.45 * (base - y))))]))
    if holes == 0 and not joined:
        return "µ"
    return "p" if holes >= 1 and joined else None


def _measure(img: np.ndarray, bar: _Bar) -> tuple[float, float]:
    """Bar length and its spread over rows: tick centre to tick centre, else tip to tip by coverage."""
    if (ticks := _end_ticks(img, bar)) is not None:
        return ticks[1] - ticks[0], 0.0
    if bar.soft:
        return half_contrast_length(img, bar)
    rows = img[bar.y0 + (bar.thick >= 4):bar.y1 - (bar.thick >= 4)].astype(np.float64)
    a, b, w = bar.x0, bar.x1, img.shape[1]
    fg = float(np.median(np.hstack([rows[:, s0 + 2:s1 - 2] for s0, s1 in bar.pieces()])))
    lengths = np.full(len(rows), float(b - a - 4))  # pixels a+2 .. b-3 are full; ends by coverage
    for lo, hi, o0, o1 in ((a - 1, a + 2, max(0, a - 6), a - 1), (b - 2, b + 1, b + 1, min(w, b + 6))):
        out = rows[:, o0:o1][np.abs(rows[:, o0:o1] - fg) > 0.3]
        bg = float(np.median(out)) if out.size else 1.0 - fg
        lengths += np.clip((rows[:, max(0, lo):min(w, hi)] - bg) / (fg - bg), 0, 1).sum(axis=1)
    return float(lengths.mean()), float(lengths.std())


def _end_ticks(img: np.ndarray, bar: _Bar) -> tuple[float, float] | None:
    """Centres of 1-px end ticks just above and below the bar (FEI style), if present."""
    h, w = img.shape
    if bar.y0 < 1 or bar.y1 >= h:
        return None
    fg, bg, centres = bar.fg, _surface(img, bar)[0], []
    for lo, hi in ((bar.x0 - 1, bar.x0 + 6), (bar.x1 - 6, bar.x1 + 1)):
        cs = []
        for r in (bar.y0 - 1, bar.y1):
            c = np.clip((img[r, max(0, lo):min(w, hi)] - bg) / (fg - bg), 0, 1)
            k = int(np.argmax(c))
            if not 0.75 <= c.sum() <= 1.2 or c[max(0, k - 1):k + 2].sum() < 0.8 * c.sum():
                return None
            cs.append(max(0, lo) + float((c * np.arange(c.size)).sum() / c.sum()))
        if abs(cs[0] - cs[1]) > 0.3:
            return None
        centres.append((cs[0] + cs[1]) / 2)
    return centres[0], centres[1]


def _exclusion(img: np.ndarray, bar: _Bar, label: Box) -> Box:
    """Bar + label, grown to the uniform band, box or databar they sit on, if any.

    Bounded on purpose: on a dark frame (support near black, cores clipped white)
    the image itself is "pure black and white", so neither a flood fill of the
    band's grey level nor "mostly extreme rows" stops at the band's edge. A band
    or box is a drawn surface: nearly every pixel of its rows is exactly the
    surface or the ink value, and it hugs its content (padding of about the
    content's height). Growth past that is image, never annotation.
    """
    h, w = img.shape
    x0, y0, x1, y1 = min(bar.x0, label[0]), min(bar.y0, label[1]), max(bar.x1, label[2]), max(bar.y1, label[3])
    ch, cw = y1 - y0, x1 - x0
    reach = max(8, ch)  # how far a band or box may extend past its content
    box = (max(0, x0 - 2), max(0, y0 - 2), min(w, x1 + 2), min(h, y1 + 2))
    u8 = np.rint(img * 255).astype(np.uint8)
    seed = (bar.x0 + bar.length // 4, bar.y0 - 1 if bar.y0 > 0 else bar.y1)
    flags = cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | 8
    area, _, _, (fx, fy, fw, fh) = cv2.floodFill(u8, np.zeros((h + 2, w + 2), np.uint8), seed, 0, 2, 2, flags)
    hugs = fy >= y0 - reach and fy + fh <= y1 + reach and (fw <= cw + 2 * reach or fw == w)
    if hugs and area >= 0.3 * fw * fh and fx <= x0 and fy <= y0 and fx + fw >= x1 and fy + fh >= y1:
        box = (min(box[0], fx), min(box[1], fy), max(box[2], fx + fw), max(box[3], fy + fh))
    # Full-width rows of a drawn surface reaching an image edge are a band or databar:
    # exclude them full width, stopping at a frame line of the opposite colour.
    below = max(8, 3 * ch, int(0.05 * h))  # a databar has a row of cells below its bar
    if (drawn := _drawn_rows(img, bar, (x0, y0, x1, y1))) is None:
        return box
    light = (u8 >= 247).mean(axis=1)
    if box[3] >= h - below and drawn[box[3]:].all():
        top = box[1]
        while top > max(0, box[1] - reach) and drawn[top - 1] and light[top] < 0.9:
            top -= 1
        return 0, top, w, h
    if box[1] <= below and drawn[:box[1]].all():
        bottom = box[3]
        while bottom < min(h, box[3] + reach) and drawn[bottom] and light[bottom - 1] < 0.9:
            bottom += 1
        return 0, 0, w, bottom
    return box


def _drawn_rows(img: np.ndarray, bar: _Bar, content: Box) -> np.ndarray | None:
    """Rows that software drew: every pixel one of the band's few grey values, or next to ink.

    Exact values, not "near black": a drawn surface has no noise, while the dark
    support of a saturated frame is noisy (or clipped to black on only part of it).
    The palette is the values that each cover 1 % of the bar's surroundings (a real
    Helios databar uses 0, 252 and 255, and 4 for dim text); anti-aliased glyph edges lie next to ink."""
    h, w = img.shape
    x0, y0, x1, y1 = content
    fgv = bar.fg
    around = img[max(0, y0 - 2):min(h, y1 + 2), max(0, x0 - 2):min(w, x1 + 2)]
    values, counts = np.unique(around, return_counts=True)
    paper = np.abs(values - fgv) > 0.5
    if not paper.any():
        return None
    palette = values[counts >= 0.01 * around.size]
    paper_value = values[paper][np.argmax(counts[paper])]
    near_ink = cv2.dilate((np.abs(img - fgv) < 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    clean = np.isin(img, palette) | near_ink | (np.abs(img - paper_value) <= 0.02)  # + dim text (Helios: 4)
    ruled = (np.isin(img, palette) & (np.abs(img - fgv) < 0.5)).mean(axis=1) >= 0.9  # a frame line
    return (((img == paper_value).mean(axis=1) >= 0.3) | ruled) & (clean.mean(axis=1) >= 0.98)
