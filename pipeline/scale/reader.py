"""Find the scale bar burned into a microscope image and read its label with Tesseract.

Why it works this way:
* Software draws bars and labels in the extreme grey values, so the image is scaled
  by min/max, not percentiles: the bar stays at exactly 1.0 (or 0.0) and is told from
  bright particles by shape - runs of equal extent on consecutive rows, contrasting
  rows above and below, not the edge of a larger region.  Both polarities are searched.
* Bars split by their label (FEI databar) are re-joined when two similar collinear
  segments have text between them.
* The label is found geometrically (thin-stroked, glyph-sized blobs of the bar's colour
  in a line next to the bar), so Tesseract only sees that line: four tiles of it (three
  glyph heights, one unslanted) stacked, and every candidate line of the frame read in
  ONE Tesseract run, because process start-up dominates OCR time (ocr.py).
* Length is the summed pixel coverage along the bar, tip to tip (anti-aliased end
  pixels count by their intensity), or tick centre to tick centre when the bar has
  1-px end ticks (FEI convention, checked on a real Helios databar: 148 px = 500 µm).
* Nothing is guessed.  A reading is trusted only if the OCR text agrees with the
  geometry: glyph and decimal-point counts, the shape of the µ (Tesseract often says
  'p', a 10^6 error), a 1-2-5 value, straight bar ends, a plausible nm/px and no
  disagreeing candidate; otherwise confident=False with ``reasons``.
* Where that finds nothing confident, the bars with no reading are tried again with
  their label cut against another grey than the bar's (own_ink.py: blurred, a thin
  label fades more than a thick bar, a thin bar more than a bold label); a deeper cut
  keeps the doubts the bar's own cut saw.
* Where that finds nothing confident (a figure resampled for a paper: the label's
  line lost in texture, a bar broken by noise), text_first.py starts from the words:
  Tesseract's sparse text finds number + unit, then the bar beside them; its readings
  pass the same checks.
Boxes are half-open (x0, y0, x1, y1): ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .bar_find import Bar, boxes_label, find_bars, outline_edge, same_stroke
from .denoise import for_labels
from .exclusion import exclusion
from .label import Box, Label, text_lines
from .length import dark_rims, end_doubts, end_ticks, fading_ends, measure_bar, repeats_pixels
from .ocr import ocr_lines
from .own_ink import label_inks
from .parse import NM, TWO_VALUES, micro_by_field, read_label
from .second_reader import PLAUSIBLE_NM_PER_PX, settle
from .text_first import read_text_first

_MAX_OCR = 5  # label lines OCR'd per frame, bottom first
_TEXT_FIRST_SLACK = (1.5, 0.015)  # px, fraction: see _scale_bar
_BAR_FIRST_SLACK = (3.0, 0.03)
# Under this a bar's length is no better than 2 %: resampled, each end may be half a pixel
# out and nothing in the frame tells (a Zeiss 39 px H-bar halved and sharpened is 20 px
# between crisp ends for 19.5, read 2.9 % long); the bars are 25-700 px.
MIN_BAR_PX = 25.0
# In a frame enlarged by repeating pixels an end may be a whole pixel out: 2 % needs 50 px
# (a 27 px bar enlarged 1.3x by nearest neighbour is drawn 36 px for 35.1, 2.5 % long).
MIN_REPEATED_BAR_PX = 50.0


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
    bar: Bar | None = field(default=None, repr=False, compare=False)  # what was read: kept
    label_bbox: Box | None = field(default=None, repr=False)         # for exclusion()
    # which reading path gave it: "bar first" (the bar's geometry found the label line) or
    # "text first" (Tesseract's sparse words, then their bar): their label crops differ,
    # so a doubt seen in one run and not another can be traced to the path
    found_by: str = field(default="bar first", compare=False)


OUTLINED = "the bar is an edge of an outline round a bar of the other colour (inside or outside?)"
BOX_EDGE = "the bar is an edge of a box drawn round its label, not a scale bar"


def find_scale_bar(image: np.ndarray) -> ScaleBar | None:
    """Locate and read the scale bar; None when no bar with a readable label is found.

    Bar first (the bar's geometry finds its label line); where that gives no confident
    reading, bar first again for the bars it read nothing beside, their labels cut
    against their own grey; then text first (number + unit words found by Tesseract,
    then their bar), over the frame's bands too where bar first read nothing at all."""
    img = np.asarray(image, dtype=np.float32)
    if not np.isfinite(img).all():  # a check, not nan_to_num's copies, on the clean frames that are the rule
        img = np.nan_to_num(img)
    if img.ndim != 2 or min(img.shape) < 32 or img.max() <= img.min():
        return None
    img = (img - img.min()) / (img.max() - img.min())
    bars = find_bars(img)
    lines_img = for_labels(img)  # the frame itself unless it is a noisy figure (denoise.py)
    if lines_img is not img:  # a thin bar under noise may break into specks: seen once smoothed
        bars += [b for b in find_bars(lines_img) if not any(same_stroke(b, a) for a in bars)]
    lines = [(b, text_lines(lines_img, b)) for b in bars]  # looked for in lines_img, cut at each bar's grey
    reads = _bar_first(img, [(b, lab) for b, labels in lines for lab in labels])
    first_read = bool(reads)
    if not any(r.confident for r in reads):  # a label faded unlike its bar: cut against another grey
        unread = [(b, labels) for b, labels in lines
                  if not any(r.bar is not None and same_stroke(b, r.bar) for r in reads)]
        reads += _bar_first(img, _own_ink_lines(lines_img, unread))
    if not any(r.confident for r in reads):
        second = [_scale_bar(img, bar, label, reading)
                  for bar, label, reading in read_text_first(img, bars, not first_read)]
        for r in second:
            r.found_by = "text first"
            # a bar whose row held two values: the words found first pick one of them, no better
            if any(same_stroke(r.bar, v.bar) and any(w.startswith(TWO_VALUES) for w in v.reasons) for v in reads):
                r.confident, r.reasons = False, r.reasons + (TWO_VALUES,)
        if any(r.confident for r in second):
            reads = second  # the bar-first readings were doubtful: the words show which line is the label
        else:
            reads += second
    if not reads:
        return None
    for r in reads:  # inside or outside: the drawing does not say which the label measures
        if r.bar is not None and outline_edge(img, r.bar, bars):
            r.confident, r.reasons = False, r.reasons + (OUTLINED,)
        if r.bar is not None and r.label_bbox is not None and boxes_label(img, r.bar, r.label_bbox):
            r.confident, r.reasons = False, r.reasons + (BOX_EDGE,)
    best = max(reads, key=lambda r: (r.confident, BOX_EDGE not in r.reasons))  # a box's edge is no bar: last
    if any(abs(r.nm_per_px / best.nm_per_px - 1) > 0.01 for r in reads):
        best.confident, best.reasons = False, best.reasons + ("several candidates disagree",)
    # the band or box kept out of segmentation, for the one reading returned only
    best.exclude_bbox = exclusion(img, best.bar, best.label_bbox)
    return best


def _bar_first(img: np.ndarray, cands: list[tuple[Bar, Label]]) -> list[ScaleBar]:
    """Readings of candidate (bar, label line) pairs: the lowest ``_MAX_OCR`` lines (bars
    with a gap, FEI's, first), each OCR'd and checked; bars measured on ``img``."""
    if not cands:
        return []
    cands.sort(key=lambda c: -(c[0].y0 / img.shape[0] + 0.3 * (c[0].gap is not None)))  # bottom first
    cands = cands[:_MAX_OCR]
    words = ocr_lines([label for _, label in cands])  # every line in one Tesseract run
    return [_scale_bar(img, bar, label, reading, _BAR_FIRST_SLACK) for (bar, label), w in zip(cands, words)
            if (reading := read_label(w, label)) is not None]


def _own_ink_lines(lines_img: np.ndarray, unread: list[tuple[Bar, list[Label]]]) -> list[tuple[Bar, Label]]:
    """A second try, for bars the first read nothing beside (each with its lines cut at
    its grey): their lines cut against another grey (own_ink.label_inks), in
    ``lines_img`` (the frame, denoised where it is a noisy figure: denoise.py).  A deeper
    cut sees a faint glyph or a small point less, so the doubts of the line cut at the
    bar's grey that it overlaps are its doubts too: a '100 nm' whose faint '0' the bar's
    cut saw must not become a plain '10 nm'."""
    return [(b, _lend_doubts(lab, at_bar_grey) if ink.deeper else lab)
            for b, at_bar_grey in unread for ink in label_inks(lines_img, b)
            for lab in text_lines(lines_img, b, ink.grey)]


def _lend_doubts(label: Label, at_bar_grey: list[Label]) -> Label:
    """``label`` with the doubts of the lines in ``at_bar_grey`` whose boxes overlap it,
    over all its columns (their columns are another crop's)."""
    x0, y0, x1, y1 = label.box
    lent = {why for other in at_bar_grey for *_, why in other.spoilers
            if min(x1, other.box[2]) > max(x0, other.box[0]) and min(y1, other.box[3]) > max(y0, other.box[1])}
    width = float(label.ink.shape[1])
    return replace(label, spoilers=label.spoilers + tuple((0.0, width, why) for why in sorted(lent)))


def _scale_bar(img: np.ndarray, bar: Bar, label: Label, reading: tuple[str, float, str, list[str]],
               slack: tuple[float, float] = _TEXT_FIRST_SLACK) -> ScaleBar:
    """A reading measured: the bar's length, and the doubts its shape and the nm/px raise.

    ``slack``: how far (px, fraction) the bar's averaged rows may put its ends from the
    measured ones (length.end_doubts; the averaged ends run 1-2 px long on a clean bar).
    Tight for a bar found beside words (the text finder's, as before); looser for one
    the bar search found whole by its own rows, where only the piece of a bar broken by
    noise is to be caught, and it differs by far more (66 px of 160 in the test)."""
    length, spread = measure_bar(img, bar)
    reading = micro_by_field(reading, length, max(img.shape))
    text, value, unit, why = settle(label, reading, length)  # before the bar's own doubts: those stay
    if spread > 0.5:
        why.append(f"ragged bar ends (row spread {spread:.2f} px)")
    if length < MIN_BAR_PX:
        why.append(f"bar of {length:.1f} px: too short to measure within 2 %")
    elif length < MIN_REPEATED_BAR_PX and repeats_pixels(img):
        why.append(f"bar of {length:.1f} px in a frame enlarged by repeating pixels: too short to measure within 2 %")
    why += end_doubts(img, bar, label.box, length, slack)
    if (fading := fading_ends(img, bar, length)) is not None:
        why.append(fading)
    if (rims := dark_rims(img, bar, length)) is not None:
        why.append(rims)
    if bar.gap is not None and end_ticks(img, bar) is None:
        why.append("split bar without clear end ticks")  # FEI measures tick to tick, not tip to tip
    nm = value * NM[unit]
    if not PLAUSIBLE_NM_PER_PX[0] <= nm / length <= PLAUSIBLE_NM_PER_PX[1]:  # finer than 4 pm/px or coarser than 0.1 mm/px
        why.append(f"implausible {nm / length:.3g} nm/px")
    bar_box = (bar.x0, bar.y0, bar.x1, bar.y1)
    return ScaleBar(length, value, unit, nm, nm / length, text, bar_box, bar_box, not why, tuple(why),
                    bar=bar, label_bbox=label.box)
