"""Find the scale bar burned into a microscope image and read its label with Tesseract.

Why it works this way:
* Acquisition software draws bars and labels with the extreme grey values (pure
  white or pure black), so the image is scaled by its min/max, not percentiles:
  the bar stays at exactly 1.0 (or 0.0) and can be told apart from bright
  particles by *shape*: bars are runs of identical extent on consecutive rows,
  with contrasting rows just above and below.  Both polarities are searched.
* Bars split by their label (FEI databar) are merged when two similar
  segments share their rows and text sits in the gap.
* The label is found geometrically first (glyph-sized blobs of the bar's colour
  in a line next to the bar), so Tesseract only runs on one small crop per
  candidate: a 2048 x 2048 image costs one or two OCR calls.
* Length is the summed pixel coverage along the bar, tip to tip: full pixels
  count 1, the anti-aliased end pixels their fractional intensity.
* Nothing is guessed: odd OCR text, a glyph count that does not match the
  text, a non-1-2-5 value, ragged bar ends or disagreeing candidates all give
  ``confident=False`` (the reasons are listed in ``ScaleBar.reasons``).

Boxes are half-open ``(x0, y0, x1, y1)``: ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytesseract
from scipy import ndimage

Box = tuple[int, int, int, int]
_LABEL = re.compile(r"^([0-9SOoIl|]+(?:[.,][0-9SOoIl|]+)?)\s*([A-Za-zµÅ]+)$")
_DIGITS = str.maketrans("SOoIl|", "500111")
_UNIT = {"nm": "nm", "µm": "µm", "um": "µm", "ym": "µm", "yum": "µm", "yµm": "µm",
         "pm": "pm", "Å": "Å", "A": "Å", "mm": "mm"}
_NM = {"nm": 1.0, "µm": 1e3, "pm": 1e-3, "Å": 0.1, "mm": 1e6}
_NICE = (1.0, 2.0, 2.5, 5.0)
_MAX_OCR = 4
_MIN_CONF = 50.0
_VARIANTS = ((40, cv2.INTER_CUBIC), (28, cv2.INTER_LINEAR), (56, cv2.INTER_LINEAR))


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
class _Bar:
    x0: int
    x1: int
    y0: int
    y1: int
    pol: int  # +1 white bar, -1 black bar
    gap: tuple[int, int] | None = None

    @property
    def length(self) -> int:
        return self.x1 - self.x0

    @property
    def thick(self) -> int:
        return self.y1 - self.y0


def _normalise(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    img = np.nan_to_num(img, nan=float(np.nanmin(img)))
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _pieces(bar: _Bar) -> list[tuple[int, int]]:
    """Column ranges actually covered by the bar (two when split by its label)."""
    if bar.gap is None:
        return [(bar.x0, bar.x1)]
    return [(bar.x0, bar.gap[0]), (bar.gap[1], bar.x1)]


def _segments(mask: np.ndarray, pol: int, min_len: int) -> list[_Bar]:
    """Rectangles of ``mask``: runs with the same extent (+-1 px) on consecutive rows."""
    h, w = mask.shape
    pad = np.zeros((h, w + 2), np.int8)
    pad[:, 1:-1] = mask
    ys, xs = np.nonzero(np.diff(pad, axis=1))
    y, x0, x1 = ys[0::2], xs[0::2], xs[1::2]
    keep = (x1 - x0 >= min_len) & (x0 > 0) & (x1 < w)
    open_: list[list[int]] = []  # [x0, x1, y0, y1]
    done: list[list[int]] = []
    for yy, a, b in zip(y[keep].tolist(), x0[keep].tolist(), x1[keep].tolist()):
        for g in open_:
            if g[3] == yy and abs(g[0] - a) <= 1 and abs(g[1] - b) <= 1:
                g[0], g[1], g[3] = min(g[0], a), max(g[1], b), yy + 1
                break
        else:
            open_.append([a, b, yy, yy + 1])
        done += [g for g in open_ if g[3] < yy]
        open_ = [g for g in open_ if g[3] >= yy]
    out = []
    for a, b, y0, y1 in done + open_:
        t = y1 - y0
        if t < 2 or t > 0.06 * h or b - a < 3 * t:
            continue
        edge = [mask[r, a:b].mean() for r in (y0 - 1, y1) if 0 <= r < h]
        if all(e < 0.25 for e in edge):
            out.append(_Bar(a, b, y0, y1, pol))
    return out


def _merge(segs: list[_Bar], mask: np.ndarray) -> list[_Bar]:
    """Join two similar collinear segments with text in between (FEI split bar)."""
    segs = sorted(segs, key=lambda s: s.x0)
    used: set[int] = set()
    out = []
    for i, a in enumerate(segs):
        for j in range(i + 1, len(segs)):
            b = segs[j]
            gap = b.x0 - a.x1
            if (j in used or abs(a.y0 - b.y0) > 1 or abs(a.y1 - b.y1) > 1 or gap <= 0
                    or gap > 4 * max(a.length, b.length)
                    or min(a.length, b.length) < 0.5 * max(a.length, b.length)):
                continue
            band = mask[max(0, a.y0 - 3 * a.thick):a.y1 + 3 * a.thick, a.x1:b.x0]
            if band.mean() > 0.02:
                out.append(_Bar(a.x0, b.x1, min(a.y0, b.y0), max(a.y1, b.y1), a.pol, (a.x1, b.x0)))
                used |= {i, j}
                break
    return out + [s for k, s in enumerate(segs) if k not in used]


def _candidates(img: np.ndarray) -> list[_Bar]:
    h, w = img.shape
    med = float(np.median(img[:: max(1, h // 256), :: max(1, w // 256)]))
    min_len = max(12, int(0.03 * w))
    found = []
    for pol, mask in ((1, img >= 1 - 0.3 * (1 - med)), (-1, img <= 0.3 * med)):
        segs = _segments(mask, pol, max(6, min_len // 2))
        found += [s for s in _merge(segs, mask) if s.length >= max(min_len, 8 * s.thick)]
    return found


@dataclass
class _Label:
    soft: np.ndarray   # text coverage in [0, 1] (1 = ink), only the line's glyphs
    ink: np.ndarray    # the same, binarised
    box: Box           # in image coordinates
    n_glyphs: int      # glyph-sized blobs (dots and specks not counted)


def _surface(img: np.ndarray, bar: _Bar) -> float:
    """Grey level of what the bar is drawn on (band, box, strip or local image)."""
    fg = 1.0 if bar.pol > 0 else 0.0
    vals = [img[max(0, bar.y0 - 4):max(0, bar.y0 - 1), bar.x0:bar.x1],
            img[bar.y1 + 1:bar.y1 + 4, bar.x0:bar.x1]]
    v = np.concatenate([a.ravel() for a in vals])
    v = v[np.abs(v - fg) > 0.3]
    return float(np.median(v)) if v.size else 1.0 - fg


def _text_line(img: np.ndarray, bar: _Bar) -> _Label | None:
    """The line of glyph-sized blobs (bar colour, half-way threshold) nearest the bar."""
    h, w = img.shape
    L, t = bar.length, bar.thick
    fg, bg = (1.0 if bar.pol > 0 else 0.0), _surface(img, bar)
    wx0, wx1 = max(0, int(bar.x0 - 2.2 * L)), min(w, int(bar.x1 + 2.2 * L))
    wy0, wy1 = max(0, int(bar.y0 - 0.8 * L - 2 * t)), min(h, int(bar.y1 + 0.8 * L + 2 * t))
    soft = np.clip((img[wy0:wy1, wx0:wx1] - bg) / (fg - bg), 0, 1)
    win = (soft > 0.5).astype(np.uint8)
    for sx0, sx1 in _pieces(bar):  # the bar and its end ticks are not text
        win[max(0, bar.y0 - wy0 - 1):bar.y1 - wy0 + 1, max(0, sx0 - wx0 - 1):sx1 - wx0 + 1] = 0
    n, lab, st, _ = cv2.connectedComponentsWithStats(win, connectivity=8)
    x, y, cw, ch = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    inner = (x > 0) & (y > 0) & (x + cw < win.shape[1]) & (y + ch < win.shape[0])
    glyph = inner & (ch >= 5) & (ch <= max(8, 0.9 * L)) & (cw <= 4 * ch) & (st[:, 4] >= 0.12 * cw * ch)
    glyph[0] = False
    if glyph.any():  # strokes are thin, particles are solid: drop blobs by inscribed radius
        dist = cv2.distanceTransform(win, cv2.DIST_L2, 3)
        radius = np.zeros(n)
        radius[1:] = ndimage.maximum(dist, lab, np.arange(1, n))
        glyph &= radius <= np.maximum(2.0, 0.3 * ch)
    idx = [int(i) for i in np.nonzero(glyph)[0]]
    parent = {i: i for i in idx}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for k, i in enumerate(idx):
        for j in idx[k + 1:]:
            ov = min(y[i] + ch[i], y[j] + ch[j]) - max(y[i], y[j])
            gapx = max(x[i], x[j]) - min(x[i] + cw[i], x[j] + cw[j])
            if ov >= 0.5 * min(ch[i], ch[j]) and gapx <= 1.2 * max(ch[i], ch[j]) \
                    and min(ch[i], ch[j]) >= 0.4 * max(ch[i], ch[j]):
                parent[root(j)] = root(i)
    lines: dict[int, list[int]] = {}
    for i in idx:
        lines.setdefault(root(i), []).append(i)
    bx0, bx1, by0, by1 = bar.x0 - wx0, bar.x1 - wx0, bar.y0 - wy0, bar.y1 - wy0
    best, best_d = None, np.inf
    for members in lines.values():
        if len(members) < 2:
            continue
        lx0, ly0 = min(x[members]), min(y[members])
        lx1, ly1 = max(x[members] + cw[members]), max(y[members] + ch[members])
        lh = int(np.median(ch[members]))
        if min(lx1, bx1) - max(lx0, bx0) >= 0.5 * (lx1 - lx0):  # above / below / in the gap
            d = max(by0 - ly1, ly0 - by1, 0)
        elif min(ly1, by1 + lh) - max(ly0, by0 - lh) > 0:  # beside
            d = max(bx0 - lx1, lx0 - bx1, 0)
        else:
            continue
        if d <= 2 * lh and d / lh < best_d:
            best, best_d = (lx0, ly0, lx1, ly1, lh), d / lh
    if best is None:
        return None
    lx0, ly0, lx1, ly1, lh = best
    px, py = max(2, int(0.25 * lh)), max(2, int(0.35 * lh))
    cx, cy = x + cw / 2, y + ch / 2
    sel = inner & (cx >= lx0 - px) & (cx <= lx1 + px) & (cy >= ly0 - py) & (cy <= ly1 + py) \
        & (ch <= 1.6 * lh)
    small = ch < 0.45 * lh  # keep dots and Å rings inside the line, not specks beside it
    sel &= ~small | ((cx > lx0) & (cx < lx1) & (cy >= ly0 - py) & (cy <= ly1))
    sel &= ~small | glyph | (st[:, 4] >= 0.3 * cw * ch)
    sel[0] = False
    cy0, cx0 = max(0, ly0 - py), max(0, lx0 - px)
    keep = np.isin(lab, np.nonzero(sel)[0])[cy0:ly1 + py, cx0:lx1 + px]
    near = cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    spans = sorted((int(x[i]), int(x[i] + cw[i])) for i in np.nonzero(sel & (ch >= 0.45 * lh))[0])
    n_glyphs, right = 0, -1  # pieces of one broken glyph overlap or touch in x
    for a, b in spans:
        n_glyphs += a > right
        right = max(right, b) if a <= right else b
    box = (int(lx0 + wx0), int(ly0 + wy0), int(lx1 + wx0), int(ly1 + wy0))
    return _Label(soft[cy0:ly1 + py, cx0:lx1 + px] * near, keep, box, n_glyphs)


def _ocr(label: _Label, height: float, interp: int) -> tuple[str, float]:
    """OCR the anti-aliased line scaled to ``height`` px glyphs; text and min word conf."""
    ys = np.nonzero(label.ink.any(axis=1))[0]
    scale = float(np.clip(height / max(1, ys[-1] - ys[0] + 1), 1.0, 8.0))
    big = cv2.resize(label.soft.astype(np.float32), None, fx=scale, fy=scale, interpolation=interp)
    img = np.clip(255 - 255 * big, 0, 255).astype(np.uint8)
    img = cv2.copyMakeBorder(img, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
    d = pytesseract.image_to_data(img, config="--psm 7", output_type=pytesseract.Output.DICT)
    words = [(w, float(c)) for w, c in zip(d["text"], d["conf"]) if w.strip()]
    if not words:
        return "", 0.0
    return " ".join(w for w, _ in words), min(c for _, c in words)


def _read(label: _Label) -> tuple[str, float, str, list[str]] | None:
    """Read the label; a doubtful first reading is retried at other scales.

    A clean reading is accepted if it is the first one or if it agrees with an
    earlier (doubtful but parsable) one, so a retry never just swaps one guess
    for another.  Returns the text, value, unit and the reasons for doubt.
    """
    seen: list[tuple[str, float, str, list[str]]] = []
    for height, interp in _VARIANTS:
        text, conf = _ocr(label, height, interp)
        parsed = _parse(text, label)
        if parsed is None:
            continue
        value, unit, why = parsed
        if conf < _MIN_CONF:
            why.append(f"low OCR confidence {conf:.0f}")
        if not why and (not seen or any((v, u) == (value, unit) for _, v, u, _ in seen)):
            return text, value, unit, []
        seen.append((text, value, unit, why))
    return seen[0] if seen else None


def _micro_or_pico(label: _Label) -> str | None:
    """'µ', 'p' or 'u' (no descender) from glyph shape; None when unclear.

    Tesseract often reads a serif µ as 'p', and 'pm' for 'µm' is a 10^6 error, so
    the one glyph hanging below the baseline is checked: a 'p' has a closed bowl
    whose top joins the stem; a µ is an open u-shape.  On ~2500 rendered labels
    (all fonts, 6-40 px) this never called a p 'µ'; when unclear, OCR decides.
    """
    n, lab, st, _ = cv2.connectedComponentsWithStats(label.ink.astype(np.uint8), connectivity=8)
    if n < 3:
        return None
    lh = float(np.median(st[1:, 3]))
    big = [i for i in range(1, n) if st[i, 3] >= 0.45 * lh]
    base = float(np.median([st[i, 1] + st[i, 3] for i in big]))
    desc = [i for i in big if st[i, 1] + st[i, 3] - base >= max(1.5, 0.15 * lh)]
    if not desc:
        return "u"
    x, y, w, h = st[desc[0], :4]
    if len(desc) > 1 or w > 0.9 * h:
        return None
    g = (lab[y:y + h, x:x + w] == desc[0]).astype(np.uint8)
    loose = (label.soft[y:y + h, x:x + w] > 0.2) & (cv2.dilate(g, np.ones((3, 3), np.uint8)) > 0)
    holes = cv2.connectedComponents(np.pad(~loose, 1, constant_values=True).astype(np.uint8),
                                    connectivity=4)[0] - 2
    joined = False  # a top row that is one solid run across the glyph: bowl meets stem
    for row in loose[: max(2, int(round(0.45 * (base - y))))]:
        xs = np.nonzero(row)[0]
        joined |= bool(xs.size >= 0.6 * w and (np.diff(xs) == 1).all())
    if holes == 0 and not joined:
        return "µ"
    return "p" if holes >= 1 and joined else None


def _parse(text: str, label: _Label) -> tuple[float, str, list[str]] | None:
    """Number + unit, undoing OCR confusions seen on scale bar fonts (S->5, rn->m, µ->u/p/y)."""
    m = _LABEL.match(text.strip().replace("μ", "µ"))
    if not m:
        return None
    num = m.group(1).translate(_DIGITS).replace(",", ".")
    raw = m.group(2).replace("rn", "m")
    if num.count(".") > 1 or raw not in _UNIT:
        return None
    value, unit, why = float(num), _UNIT[raw], []
    s = num + raw
    if unit in ("µm", "pm"):
        shape = _micro_or_pico(label)
        if shape == "µ" or (shape in ("u", None) and raw != "pm"):
            unit = "µm"
        elif shape == "p" and raw == "pm":
            unit = "pm"
        else:
            why.append(f"glyph shape {shape!r} disagrees with OCR {raw!r}")
    mant = value / 10 ** np.floor(np.log10(value)) if value > 0 else 0
    if not any(abs(mant - n) < 1e-6 for n in _NICE):
        why.append(f"value {value:g} is not a 1-2-5 number")
    extra = 1 if unit == "Å" else 0
    if label.n_glyphs > len(s.replace(".", "")) + extra:
        why.append(f"{label.n_glyphs} glyphs but OCR text {s!r}")
    if raw not in _UNIT or num != m.group(1).replace(",", "."):
        why.append(f"unusual label spelling {text!r}")
    return value, unit, why


def _end_ticks(img: np.ndarray, bar: _Bar, fg: float) -> tuple[float, float] | None:
    """Centres of 1-px end ticks just above and below the bar (FEI style), if present."""
    h, w = img.shape
    if bar.y0 < 1 or bar.y1 >= h:
        return None
    bg = _surface(img, bar)
    centres = []
    for lo, hi in ((bar.x0 - 1, bar.x0 + 6), (bar.x1 - 6, bar.x1 + 1)):
        cs = []
        for r in (bar.y0 - 1, bar.y1):
            c = np.clip((img[r, max(0, lo):min(w, hi)] - bg) / (fg - bg), 0, 1)
            k = int(np.argmax(c))
            if c.sum() < 0.7 or c.sum() > 1.4 or c[max(0, k - 1):k + 2].sum() < 0.8 * c.sum():
                return None
            cs.append(max(0, lo) + float((c * np.arange(c.size)).sum() / c.sum()))
        if abs(cs[0] - cs[1]) > 0.3:
            return None
        centres.append((cs[0] + cs[1]) / 2)
    return centres[0], centres[1]


def _measure(img: np.ndarray, bar: _Bar) -> tuple[float, float]:
    """Bar length and its spread over rows: tick to tick, else tip to tip by coverage."""
    h, w = img.shape
    fg = 1.0 if bar.pol > 0 else 0.0
    ticks = _end_ticks(img, bar, fg)
    if ticks is not None:
        return ticks[1] - ticks[0], 0.0
    rows = img[bar.y0 + (bar.thick >= 4):bar.y1 - (bar.thick >= 4)].astype(np.float64)
    a, b = bar.x0, bar.x1
    inner = np.hstack([rows[:, s0 + 2:s1 - 2] for s0, s1 in _pieces(bar)])
    fg = float(np.median(inner))
    lengths = np.full(len(rows), float(b - a - 4))
    for lo, hi, out in ((a - 1, a + 2, (max(0, a - 6), a - 1)), (b - 2, b + 1, (b + 1, min(w, b + 6)))):
        bg_px = rows[:, out[0]:out[1]]
        mostly_bg = bg_px[np.abs(bg_px - fg) > 0.3]
        bg = float(np.median(mostly_bg)) if mostly_bg.size else 1.0 - fg
        cov = np.clip((rows[:, max(0, lo):min(w, hi)] - bg) / (fg - bg), 0, 1)
        lengths += cov.sum(axis=1)
    return float(lengths.mean()), float(lengths.std())


def _exclusion(img: np.ndarray, bar: _Bar, label: Box) -> Box:
    """Bar + label, grown to the uniform band, box or databar they sit on, if any."""
    h, w = img.shape
    x0, y0 = min(bar.x0, label[0]), min(bar.y0, label[1])
    x1, y1 = max(bar.x1, label[2]), max(bar.y1, label[3])
    box = (max(0, x0 - 2), max(0, y0 - 2), min(w, x1 + 2), min(h, y1 + 2))
    u8 = np.rint(img * 255).astype(np.uint8)
    seed = (bar.x0 + bar.length // 4, bar.y0 - 1 if bar.y0 > 0 else bar.y1)
    ff = np.zeros((h + 2, w + 2), np.uint8)
    flags = cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | 8
    area, _, _, (fx, fy, fw, fh) = cv2.floodFill(u8, ff, seed, 0, 2, 2, flags)
    if fw * fh < 0.5 * h * w and area >= 0.3 * fw * fh and fx <= x0 and fy <= y0 \
            and fx + fw >= x1 and fy + fh >= y1:
        box = (min(box[0], fx), min(box[1], fy), max(box[2], fx + fw), max(box[3], fy + fh))
    # Rows of (almost) pure black/white reaching an image edge: a band or databar,
    # exclude it full-width; stop at a frame line of the opposite colour.
    dark, light = (u8 <= 8).mean(axis=1), (u8 >= 247).mean(axis=1)
    extreme = dark + light >= 0.9
    if extreme[box[3]:].all():
        top = box[1]
        while top > 0 and extreme[top - 1] and light[top] < 0.9:
            top -= 1
        return 0, top, w, h
    if extreme[:box[1]].all():
        bottom = box[3]
        while bottom < h and extreme[bottom] and light[bottom - 1] < 0.9:
            bottom += 1
        return 0, 0, w, bottom
    return box


def find_scale_bar(image: np.ndarray) -> ScaleBar | None:
    """Locate and read the scale bar; ``None`` when no bar with a readable label exists."""
    img = _normalise(np.asarray(image))
    if img.ndim != 2 or min(img.shape) < 32:
        return None
    h = img.shape[0]
    cands = [(bar, lab) for bar in _candidates(img) if (lab := _text_line(img, bar)) is not None]
    cands.sort(key=lambda c: -(c[0].y0 / h + 0.3 * (c[0].gap is not None)))  # bottom first
    reads = []
    for bar, label in cands[:_MAX_OCR]:
        reading = _read(label)
        if reading is None:
            continue
        text, value, unit, why = reading
        length, spread = _measure(img, bar)
        if spread > 0.5:
            why.append(f"ragged bar ends (row spread {spread:.2f} px)")
        nm = value * _NM[unit]
        if not 4e-3 <= nm / length <= 1e5:  # finer than 4 pm/px or coarser than 0.1 mm/px
            why.append(f"implausible {nm / length:.3g} nm/px")
        reads.append(ScaleBar(length, value, unit, nm, nm / length, text,
                              (bar.x0, bar.y0, bar.x1, bar.y1), _exclusion(img, bar, label.box),
                              not why, tuple(why)))
    if not reads:
        return None
    best = max(reads, key=lambda r: r.confident)
    if any(abs(r.nm_per_px / best.nm_per_px - 1) > 0.01 for r in reads):
        best.confident = False
        best.reasons += ("several candidates disagree",)
    return best
