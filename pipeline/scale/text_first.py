"""Text first: find the label's words anywhere near the bottom or top of the frame, or around
a bar whose label the geometry could not read, then the bar that belongs to them.

Why: on figures resampled and compressed for a paper the bar-first reader finds the
bar but not its label (the nearest line of blobs is texture, or a thin glyph is lost),
or finds no bar at all on a noisy support.  Tesseract's sparse-text layout (``--psm 11``)
finds number + unit words wherever they are; one run reads every region in both
polarities (tiles stacked in one image: process start-up dominates Tesseract's time),
after a top-hat that flattens the support under glyph-sized strokes.
A word is only a pointer: its bar is searched next to it (over, under or beside; in
the frame's candidates, else in a window re-normalised around the word), the label's
glyphs are taken from the word's box, and the label is read again by the reader's own
line OCR with all its checks (glyph counts, µ against p, 1-2-5, dots).  The nearest
bar is the label's whatever its colour (a white label over the image, its black bar
in a white box below): the glyphs are then those of the word's own ink, measured in
its box, and a bar of the ink's colour placed there too, of another length, is a doubt.  The two
readings must agree (when they do and the words are spelled plainly, the soft doubts
of one reading, low confidence or an odd spelling, are lifted: two preprocessings
agree); a second bar as near as the first is a doubt (and, as for every reading, so
are ends that its averaged rows place elsewhere or a stroke of its grey past an end:
length.end_doubts, applied by the reader).  Runs only when the bar-first reader found
nothing confident, so it costs nothing on drawn bars; the whole bands only when no
bar had a label line at all.
Boxes are half-open (x0, y0, x1, y1): ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from .bar_find import Bar, comes_last, find_bars, same_stroke
from .label import Box, Label, label_in_box
from .length import averaged_ends
from .ocr import Words, ocr_lines, tesseract_pages  # also installs the Tesseract environment (one OpenMP thread)
from .parse import DIGIT_LIKE, SOFT_DOUBTS, field_before, read_label, unit_family, value_unit

_PAD = 10  # white margin around each tile (px)
_BANDS = ((0.75, 1.0), (0.0, 0.12))  # where figures put their bars: bottom quarter, top eighth
_MAX_TOKENS = 4  # label words followed to a bar, most confident first
_MIN_GLYPH = 7  # px in the tile: Tesseract reads no label from shorter glyphs (measured: 5-6 px nothing, 7-8 px mostly garbled)
_MIN_INK = 0.15  # of the frame's grey range: a drawn label stands out by more than that from what it is drawn on
_PLAIN = re.compile(r"^[0-9]+(?:\.[0-9]+)?\s?(?:nm|um|µm|μm)$")  # no letter read as a digit, no odd unit
_NUMBER = re.compile(rf"^[0-9{DIGIT_LIKE}]+(?:[.,][0-9{DIGIT_LIKE}]+)?$")


@dataclass
class Word:
    """A word of the sparse-text pass, in frame coordinates, and the polarity of its ink."""
    text: str
    box: Box
    conf: float
    pol: int


def read_text_first(img: np.ndarray, bars: list[Bar], everywhere: bool = True
                    ) -> list[tuple[Bar, Label, tuple[str, float, str, list[str]]]]:
    """(bar, label, reading) for each number + unit word that has a bar next to it
    (``label_words``, then ``read_words``)."""
    return read_words(img, bars, label_words(img, bars, everywhere))


def label_words(img: np.ndarray, bars: list[Bar], everywhere: bool = True) -> list[Word]:
    """The number + unit words Tesseract's sparse text finds, most confident first.

    ``img`` is the frame scaled to 0-1; ``bars`` the bar-first candidates, whose
    surroundings are searched for words (the geometry missed their label).  With
    ``everywhere`` the bottom and top bands of the frame are searched too: for when
    no bar candidate had a readable line at all (Tesseract's time grows with area)."""
    h, w = img.shape
    regions = bands(h, w) if everywhere else []
    for bar in sorted(bars, key=lambda b: (comes_last(b, (h, w)), -b.y0))[:3]:  # the lowest (bar_find.comes_last's last)
        dx, dy = int(1.5 * bar.length + 40), int(max(40, 0.8 * bar.length))
        box = (max(0, bar.x0 - dx), max(0, bar.y0 - dy), min(w, bar.x1 + dx), min(h, bar.y1 + dy))
        if not any(r[1] <= box[1] and box[3] <= r[3] for r in regions):  # a band holds it already
            regions.append(box)
    if not regions:
        return []
    return sorted(label_tokens(sparse_words(img, regions)), key=lambda t: -t.conf)[:_MAX_TOKENS]


def read_words(img: np.ndarray, bars: list[Bar], tokens: list[Word]
               ) -> list[tuple[Bar, Label, tuple[str, float, str, list[str]]]]:
    """(bar, label, reading) for each of the number + unit ``tokens`` that has a bar
    next to it: its label's glyphs read by the reader's own line OCR, with every check."""
    lines = [(token, found) for token in tokens if (found := _token_line(img, token, bars)) is not None]
    words = ocr_lines([label for _, (_, label) in lines])  # every token's line in one Tesseract run
    return [r for (token, (placed, label)), w in zip(lines, words)
            if (r := _read_token(token, placed, label, w)) is not None]


def bands(h: int, w: int) -> list[Box]:
    """The bottom and top bands of an ``h`` x ``w`` frame (``_BANDS``), where the words are
    searched when no bar candidate had a label line."""
    return [(0, int(a * h), w, int(b * h)) for a, b in _BANDS]


def sparse_words(img: np.ndarray, regions: list[Box]) -> list[Word]:
    """Tesseract's sparse-text words in ``regions``, both polarities, in ONE run.

    Small figures are upscaled 2x (their labels are 8-15 px tall), large frames
    halved: Tesseract reads glyphs of 20-40 px best, and time grows with area."""
    h, w = img.shape
    s = 2.0 if max(h, w) <= 900 else (1.0 if max(h, w) <= 1400 else 0.5)
    tiles, slots, top = [], [], 0
    for x0, y0, x1, y1 in regions:
        for pol in (1, -1):
            if (ink := _tile(img[y0:y1, x0:x1], s, pol)).all():
                continue  # nothing that may be a glyph: no Tesseract time spent on it
            t = cv2.copyMakeBorder(ink, _PAD, _PAD, _PAD, _PAD, cv2.BORDER_CONSTANT, value=255)
            tiles.append(t)
            slots.append((top, top + t.shape[0], x0, y0, pol))
            top += t.shape[0]
    if not tiles:
        return []
    width = max(t.shape[1] for t in tiles)
    stack = np.vstack([cv2.copyMakeBorder(t, 0, 0, 0, width - t.shape[1], cv2.BORDER_CONSTANT, value=255)
                       for t in tiles])
    words = []  # LSTM only, named as in ocr.py: the legacy engine would learn from tile to tile
    for text, conf, wx, wy, ww, wh in tesseract_pages([stack], "--oem 1 --psm 11")[0]:
        k = next((k for k, sl in enumerate(slots) if sl[0] <= wy + wh / 2 < sl[1]), None)
        if k is None:
            continue
        t0, _, x0, y0, pol = slots[k]
        box = (int(x0 + (wx - _PAD) / s), int(y0 + (wy - t0 - _PAD) / s),
               int(np.ceil(x0 + (wx + ww - _PAD) / s)), int(np.ceil(y0 + (wy + wh - t0 - _PAD) / s)))
        words.append(Word(text, box, conf, pol))
    return words


def _tile(region: np.ndarray, s: float, pol: int) -> np.ndarray:
    """The region resized by ``s``, its ink of polarity ``pol`` black on white.

    A top-hat (black-hat) wider than a glyph's stroke flattens the support's texture
    and gradients; the result is cut at half its top value after a slight blur, or
    above the grain that covers more of the region than a label does, and never under
    ``_MIN_INK``: a band with no label in it has a top-hat of noise and grain alone
    (0.01-0.21 of the range on the real bar-less 2048² frames), and cut at half of that
    it filled the tile with speckle that Tesseract spent up to 0.9 s on.  Drawn labels
    stand out by more: a floor of 0.3 changed no reading on any scale set (real frames
    full size and shrunk, held-out figures, font sweep, rendered corpus), 0.6 lost three.
    Tesseract's own binarisation of the grey top-hat turns a noisy support into
    speckle words and loses the label among them (measured on held-out figures)."""
    g = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 0.8)
    g = cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (int(41 * s) | 1, int(41 * s) | 1))
    hat = cv2.morphologyEx(g, cv2.MORPH_TOPHAT if pol > 0 else cv2.MORPH_BLACKHAT, k)
    top, grain = np.percentile(hat, (99.9, 92))  # a label covers a few % of a region; grain covers more
    ink = (hat >= max(_MIN_INK, min(max(0.5 * top, grain), 0.8 * top))).astype(np.uint8)
    n, lab, st, cen = cv2.connectedComponentsWithStats(ink, connectivity=8)
    on = ink > 0
    depth = np.zeros(n, np.float32)  # each blob's stroke half-width (scipy.ndimage.maximum sorts the whole tile: 4x slower)
    np.maximum.at(depth, lab[on], cv2.distanceTransform(ink, cv2.DIST_L2, 3)[on])
    small = (st[:, 2] <= 6) & (st[:, 3] <= 6)  # a decimal point, or a speck
    drop = ((st[:, 2] < 4) & (st[:, 3] < 4)) | (~small & (depth > np.maximum(2.0, 0.3 * st[:, 3])))
    drop[0] = True  # the background; specks and solid blobs (grain, particles) are no glyphs
    drop[1:] |= ~_in_a_line(st[1:], cen[1:], ~drop[1:])
    return np.where(drop[lab], 255, 0).astype(np.uint8)


def _in_a_line(st: np.ndarray, centres: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Which kept blobs may be words: a blob with a neighbour on its line (of similar
    height, or a dot beside a taller one, overlapping half its rows, within 1.5 heights to
    the side), or one at least 1.5x as wide as tall (a whole label merged into one blob);
    the taller of a pair, or the wide blob, at least ``_MIN_GLYPH`` tall.

    Every label is two glyphs or more; grain left by the top-hat is mostly blobs on
    their own, and Tesseract's time grows with the blobs it is given (a textured
    2048² frame with no bar: 2,600 blobs, 2.4 s; 960 of them kept).  Lattice fringes
    and grain on a carbon support pair up too, but as fragments of 2-6 px in the tile
    (median 3 px), shorter than any glyph Tesseract can read: with the minimum, the
    same frame keeps ~100 blobs."""
    idx = np.nonzero(kept)[0]
    out = kept & (st[:, 2] >= 1.5 * st[:, 3]) & (st[:, 3] >= _MIN_GLYPH)
    if len(idx) < 2:
        return out
    x, y, w, h = (st[idx, k] for k in range(4))
    reach = 3 * max(float(np.percentile(h, 90)), 1.0)  # not the tallest blob: pairs grow as its square
    pairs = cKDTree(centres[idx]).query_pairs(r=reach, output_type="ndarray")
    if not len(pairs):
        return out
    i, j = pairs[:, 0], pairs[:, 1]
    rows = np.minimum(y[i] + h[i], y[j] + h[j]) - np.maximum(y[i], y[j])
    gap = np.maximum(x[i], x[j]) - np.minimum(x[i] + w[i], x[j] + w[j])
    lo, hi = np.minimum(h[i], h[j]), np.maximum(h[i], h[j])
    ok = (rows >= 0.5 * lo) & (gap <= 1.5 * hi) & ((lo >= 0.5 * hi) | (lo < 0.45 * hi)) & (hi >= _MIN_GLYPH)
    out[idx[i[ok]]] = out[idx[j[ok]]] = True
    return out


def label_tokens(words: list[Word]) -> list[Word]:
    """Number + unit: one word ("10nm") or a number followed on its line by a unit word;
    not after a databar field's name ("WD", "HFW", "=", ":")."""
    tokens, spans = [], [(w.box[0], w.box[2], w.text) for w in words]
    for i, a in enumerate(words):
        k = field_before(spans, i, 0.5 * (a.box[3] - a.box[1]))
        if k is not None and all(_same_line(w, a) for w in words[k:i]):
            continue  # "WD = 5 mm", "HV: 20 kV", "WD 7 8mm": another field of a databar, not a label
        if value_unit(a.text) is not None:
            tokens.append(a)
            continue
        if not _NUMBER.match(a.text):
            continue
        for b in words[i + 1:i + 3]:
            ah, gap = a.box[3] - a.box[1], b.box[0] - a.box[2]
            if _same_line(a, b) and -2 <= gap <= 1.2 * ah and value_unit(f"{a.text} {b.text}") is not None:
                box = (a.box[0], min(a.box[1], b.box[1]), b.box[2], max(a.box[3], b.box[3]))
                tokens.append(Word(f"{a.text} {b.text}", box, min(a.conf, b.conf), a.pol))
                break
    return tokens


def _same_line(a: Word, b: Word) -> bool:
    """Two words of one tile and polarity whose boxes overlap in height."""
    return b.pol == a.pol and min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]) >= 0.3 * (a.box[3] - a.box[1])


def _token_line(img: np.ndarray, token: Word, bars: list[Bar]) -> tuple[list[tuple[float, str, Bar]], Label] | None:
    """The bars placed where the token's bar goes, nearest first, and the label's glyphs
    beside the nearest; None if no bar is placed or no glyphs are found."""
    whole = [_whole(img, b) for b in bars + _local_bars(img, token)]  # noise may have broken a bar in pieces
    placed = sorted((p for p in (_place(b, token.box) for b in whole) if p is not None), key=lambda p: p[0])
    if not placed:
        return None
    _, side, bar = placed[0]
    label = label_in_box(img, bar, token.box, side, token.pol)
    return None if label is None else (placed, label)


def _read_token(token: Word, placed: list[tuple[float, str, Bar]], label: Label, words: list[Words]
                ) -> tuple[Bar, Label, tuple[str, float, str, list[str]]] | None:
    """The token's bar, its label's glyphs and the checked reading of the line's ``words``;
    None if the line gives no reading."""
    if (reading := read_label(words, label)) is None:
        return None
    gap, _, bar = placed[0]
    text, value, unit, why = reading
    lh = token.box[3] - token.box[1]
    if any(g - gap <= lh and not same_stroke(b, bar) and abs(b.length - bar.length) > max(2, 0.01 * bar.length)
           for g, _, b in placed[1:]):  # the same stroke found at two thresholds is one bar
        why.append("another bar as near the label")
    if bar.pol != token.pol and any(b.pol == token.pol and abs(b.length - bar.length) > max(2, 0.01 * bar.length)
                                    for _, _, b in placed[1:]):
        why.append("a bar of the label's colour is placed too")  # ink and bar normally share a colour
    if bar.gap is not None:  # its ends are not checked on averaged rows (length.end_doubts): as before, a doubt
        why.append("a split bar found beside words")
    seen = value_unit(token.text)
    if seen is None or seen[0] != value or seen[1] != unit_family(unit):
        why.append(f"text finder read {token.text!r}, the label line {text!r}")
    elif _PLAIN.match(token.text) and all(w.startswith(SOFT_DOUBTS) for w in why):
        why = []  # two readings of other preprocessings agree, one of them spelled plainly
    return bar, label, (text, value, unit, why)


def _place(bar: Bar, box: Box) -> tuple[float, str, Bar] | None:
    """(gap, side, bar) when the bar sits where a label's bar goes: under or over the words
    (overlapping half their width, within 2.5 word heights) or beside them on their line."""
    x0, y0, x1, y1 = box
    lh, lw = y1 - y0, x1 - x0
    cy = (bar.y0 + bar.y1) / 2
    if min(x1, bar.x1) - max(x0, bar.x0) >= 0.5 * min(lw, bar.length):
        gap = max(y0 - bar.y1, bar.y0 - y1)
        return (float(gap), "over", bar) if -1 <= gap <= 2.5 * lh else None
    if y0 - 0.3 * lh <= cy <= y1 + 0.3 * lh:
        gap, side = (x0 - bar.x1, "right") if bar.x1 <= x0 + 2 else (bar.x0 - x1, "left")
        return (float(gap), side, bar) if -2 <= gap <= 2 * lh else None
    return None


def _local_bars(img: np.ndarray, token: Word) -> list[Bar]:
    """Bars of the token's polarity in a band around it, searched with the band scaled to its
    own range: on a noisy or bright support a bar need not be the frame's extreme.
    Returned in frame coordinates, each with its grey level in the frame's scale."""
    h, w = img.shape
    x0, y0, x1, y1 = token.box
    lh = y1 - y0
    wy0, wy1 = max(0, y0 - 3 * lh - 10), min(h, y1 + 3 * lh + 10)
    wx0, wx1 = max(0, x0 - 900), min(w, x1 + 900)
    band = img[wy0:wy1, wx0:wx1]
    lo, hi = float(band.min()), float(band.max())
    if hi - lo < 0.05 or band.shape[0] < 8:
        return []
    found = []
    for b in find_bars((band - lo) / (hi - lo)):
        if b.pol != token.pol:
            continue
        bar = Bar(b.x0 + wx0, b.x1 + wx0, b.y0 + wy0, b.y1 + wy0, b.pol,
                  None if b.gap is None else (b.gap[0] + wx0, b.gap[1] + wx0))
        rows = img[bar.y0:bar.y1, bar.x0:bar.x1]
        core = rows[int(np.argmax(rows.mean(axis=1) * bar.pol))]
        bar.level = float(np.median(core[2:-2] if core.size > 8 else core))
        found.append(bar)
    return found


def _whole(img: np.ndarray, bar: Bar) -> Bar:
    """The bar grown to the ends its averaged rows show (pieces of a bar broken by noise
    joined), keeping its rows and grey; the same bar when nothing is to grow.

    An end grows only over columns that are mostly stroke (the bar's rows at half
    contrast, the rows above and below not): a dark grain of the support touching a bar's
    end also holds the averaged rows at half contrast, and had lengthened a held-out
    figure's 215 px bar by 8 px, read confidently."""
    left, right, stroke, _ = averaged_ends(img, bar)
    left = left if left < bar.x0 - 2 and stroke[left + 1:bar.x0].mean() >= 0.5 else bar.x0 - 1
    right = right if right > bar.x1 + 2 and stroke[bar.x1:right].mean() >= 0.5 else bar.x1
    if left >= bar.x0 - 2 and right <= bar.x1 + 2:
        return bar
    grown = Bar(left + 1, right, bar.y0, bar.y1, bar.pol, bar.gap)  # each end grown or as it was
    grown.level = bar.fg
    return grown
