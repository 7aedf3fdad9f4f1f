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
* Where still nothing is confident, all of it again on the frame at half size: a figure
  drawn or enlarged at twice the sizes above (a thick coloured bar, bold glyphs) is
  brought back to them; a bar doubted at full size keeps its doubt.
Boxes are half-open (x0, y0, x1, y1): ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from .bar_find import Bar, boxes_label, comes_last, find_bars, outline_edge, same_stroke
from .denoise import for_labels
from .exclusion import exclusion
from .label import Box, Label, text_lines
from .length import dark_rims, end_doubts, end_ticks, fading_ends, measure_bar, noisy_ends, repeats_pixels
from .ocr import ocr_lines
from .own_ink import label_inks
from .parse import NM, TWO_VALUES, micro_by_field, read_label, unit_family, value_unit
from .second_reader import PLAUSIBLE_NM_PER_PX, settle
from .text_first import Word, label_words, read_words

_MAX_OCR = 5  # label lines OCR'd per frame, bottom first
# px, fraction: see _scale_bar.  2 px, not 1.5: the averaged rows give a crisp bar 2 px long
# (length.end_doubts), and every crisp bar under 133 px read by its words was doubted (a
# real JEOL 32 px bar, 34 by its averaged rows).
_TEXT_FIRST_SLACK = (2.0, 0.015)
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
    then their bar), over the frame's bands too where bar first read nothing at all;
    then all of it once more on the frame at half size (_half_size_reads).

    The half-size try starts in a second thread as soon as text first is to run:
    beside it, not after it.  Each costs one or two Tesseract processes (~0.13 s each,
    mostly start-up: ocr.py), which then run on two cores at once; a frame that
    neither read confidently waited for four in a row (0.9 s of a 2048² frame on a
    2-core EPYC).  What is returned is what the two in sequence gave: the half-size
    readings count only where nothing at full size is confident, weighed against all
    that full size saw (_trusted_at_half).  The CPU time is the same but where text
    first reads confidently (1 of the 96 frames): its half-size try, started, is waited
    for and not used."""
    img = np.asarray(image, dtype=np.float32)
    if not np.isfinite(img).all():  # a check, not nan_to_num's copies, on the clean frames that are the rule
        img = np.nan_to_num(img)
    if img.ndim != 2 or min(img.shape) < 32 or img.max() <= img.min():
        return None
    img = (img - img.min()) / (img.max() - img.min())
    lines_img = for_labels(img)  # the frame itself unless it is a noisy figure (denoise.py)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="psdwatch-half-size") as pool:
        started: list[Future[list[ScaleBar]]] = []

        def start_half_size() -> None:
            try:
                started.append(pool.submit(_half_size_reads, img, lines_img))
            except RuntimeError:  # shutting down, or no thread can start: it runs after, in this one
                pass

        full = _reads(img, lines_img, meanwhile=start_half_size)
        reads = full.reads
        if not any(r.confident for r in reads):
            half = started[0].result() if started else _half_size_reads(img, lines_img)
            reads = reads + _trusted_at_half(half, full)
    if not reads:
        return None
    best = max(reads, key=lambda r: (r.confident, BOX_EDGE not in r.reasons))  # a box's edge is no bar: last
    if any(abs(r.nm_per_px / best.nm_per_px - 1) > 0.01 for r in reads):
        best.confident, best.reasons = False, best.reasons + ("several candidates disagree",)
    # the band or box kept out of segmentation, for the one reading returned only
    best.exclude_bbox = exclusion(img, best.bar, best.label_bbox)
    return best


@dataclass
class _Seen:
    """What one size of a frame showed: its readings, each with its doubts; every label
    line looked at beside a bar, read or not; the number + unit words Tesseract's sparse
    text found, placed by a bar or not.  At full size, what stands against a reading of
    the frame at half size."""

    reads: list[ScaleBar]
    lines: list[Label]
    words: list[Word]


def _reads(img: np.ndarray, lines_img: np.ndarray, words: bool = True,
           meanwhile: Callable[[], object] = lambda: None) -> _Seen:
    """Every reading of the frame ``img`` (scaled 0-1), its label lines looked for in
    ``lines_img`` (the frame, or the frame denoised: denoise.for_labels), each with its
    doubts (bar first, own ink, and with ``words`` text first, as find_scale_bar says),
    with what was looked at on the way (_Seen).  ``meanwhile`` is called as text first
    starts (find_scale_bar starts the half-size try there)."""
    bars = find_bars(img)
    if lines_img is not img:  # a thin bar under noise may break into specks: seen once smoothed
        bars += [b for b in find_bars(lines_img) if not any(same_stroke(b, a) for a in bars)]
    lines = [(b, text_lines(lines_img, b)) for b in bars]  # looked for in lines_img, cut at each bar's grey
    cands = [(b, lab) for b, labels in lines for lab in labels]
    seen = [lab for _, lab in cands]
    reads = _bar_first(img, cands)
    first_read = bool(reads)
    if not any(r.confident for r in reads):  # a label faded unlike its bar: cut against another grey
        unread = [(b, labels) for b, labels in lines
                  if not any(r.bar is not None and same_stroke(b, r.bar) for r in reads)]
        own = _own_ink_lines(lines_img, unread)
        seen += [lab for _, lab in own]
        reads += _bar_first(img, own)
    found: list[Word] = []
    if words and not any(r.confident for r in reads):
        meanwhile()
        found = label_words(img, bars, not first_read)
        second = [_scale_bar(img, bar, label, reading) for bar, label, reading in read_words(img, bars, found)]
        for r in second:
            r.found_by = "text first"
            # a bar whose row held two values: the words found first pick one of them, no better
            if any(same_stroke(r.bar, v.bar) and any(w.startswith(TWO_VALUES) for w in v.reasons) for v in reads):
                r.confident, r.reasons = False, r.reasons + (TWO_VALUES,)
        if any(r.confident for r in second):
            reads = second  # the bar-first readings were doubtful: the words show which line is the label
        else:
            reads += second
    for r in reads:  # inside or outside: the drawing does not say which the label measures
        if r.bar is not None and outline_edge(img, r.bar, bars):
            r.confident, r.reasons = False, r.reasons + (OUTLINED,)
        if r.bar is not None and r.label_bbox is not None and boxes_label(img, r.bar, r.label_bbox):
            r.confident, r.reasons = False, r.reasons + (BOX_EDGE,)
    return _Seen(reads, seen, found)


def _half_size_reads(img: np.ndarray, lines_img: np.ndarray) -> list[ScaleBar]:
    """The readings of ``img`` at half size (each 2 x 2 block averaged), in the frame's
    pixels: where every part of a figure was drawn or enlarged to twice the sizes the
    search knows (a coloured or JPEG-grey bar thicker than the soft search's strokes, a
    label's glyphs and outline twice as bold), halving brings them back.  Of the 17 real
    frames enlarged 2x for print, 3 were read at no size but this one.  Its length is
    measured at half size, and MIN_BAR_PX holds there (each end's half pixel is a whole
    pixel here).  What full size saw is weighed in after (_trusted_at_half).

    Bar first and own ink only: Tesseract's sparse text found the words at full size,
    and it was the half-size try's slowest part.  ``lines_img`` (the frame denoised, for
    a noisy figure) is halved too, not denoised again (0.27 s on a 2048² frame)."""
    half = _halved(img)
    if min(half.shape) < 32 or half.max() <= half.min():
        return []
    lo, span = float(half.min()), float(half.max() - half.min())
    half = (half - lo) / span
    half_lines = half if lines_img is img else np.clip((_halved(lines_img) - lo) / span, 0.0, 1.0)
    return [_doubled(r, img.shape) for r in _reads(half, half_lines, words=False).reads]


def _trusted_at_half(reads: list[ScaleBar], full: _Seen) -> list[ScaleBar]:
    """The half-size ``reads``, each a doubt (a copy, demoted) where full size saw one there.

    A doubt seen at full size stays: a faint glyph or a speck may be gone at half size
    (a '100 nm' whose faint '0' was seen must not become a plain '10 nm').  So a
    half-size reading is trusted only where, at full size (``full``), no reading of its
    bar or its label had a doubt, no label line looked at there (read or not: past the
    lines OCR'd, or unparsed) had one, and no number + unit words found there read
    otherwise."""
    out = []
    for r in reads:
        doubts = [why for o in full.reads if _overlap(o.bar_bbox, r.bar_bbox) or _overlap(o.label_bbox, r.label_bbox)
                  for why in o.reasons]
        doubts += [why for lab in full.lines if _overlap(lab.box, r.label_bbox) for *_, why in lab.spoilers]
        doubts += [f"the words there read {w.text!r}" for w in full.words
                   if _overlap(w.box, r.label_bbox) and value_unit(w.text) != (r.value, unit_family(r.unit))]
        if doubts and r.confident:
            r = replace(r, confident=False, reasons=r.reasons + (f"read at half size; at full size: {doubts[0]}",))
        out.append(r)
    return out


def _halved(img: np.ndarray) -> np.ndarray:
    """``img`` at half size, each 2 x 2 block averaged; an odd last row or column is
    repeated, not cut (a bar's end there is kept)."""
    h, w = img.shape
    even = np.pad(img, ((0, h % 2), (0, w % 2)), mode="edge")
    return even.reshape(even.shape[0] // 2, 2, even.shape[1] // 2, 2).mean(axis=(1, 3))


def _doubled(r: ScaleBar, shape: tuple[int, int]) -> ScaleBar:
    """A reading of the half-size frame in the pixels of the full frame of ``shape``: its
    rows one wider each side (an edge row of the bar may have been averaged into the
    block beside it), and the nm/px checked there (it was checked at twice the value)."""
    def box(b: Box | None) -> Box | None:
        return None if b is None else (2 * b[0], 2 * b[1], min(2 * b[2], shape[1]), min(2 * b[3], shape[0]))

    y0, y1 = max(0, 2 * r.bar.y0 - 1), min(shape[0], 2 * r.bar.y1 + 1)
    bar = replace(r.bar, x0=2 * r.bar.x0, x1=min(2 * r.bar.x1, shape[1]), y0=y0, y1=y1,
                  gap=None if r.bar.gap is None else (2 * r.bar.gap[0], 2 * r.bar.gap[1]))
    out = replace(r, length_px=2 * r.length_px, nm_per_px=r.nm_per_px / 2, bar_bbox=(bar.x0, y0, bar.x1, y1),
                  exclude_bbox=box(r.exclude_bbox), label_bbox=box(r.label_bbox), bar=bar,
                  found_by=f"{r.found_by}, at half size")
    if not PLAUSIBLE_NM_PER_PX[0] <= out.nm_per_px <= PLAUSIBLE_NM_PER_PX[1]:
        out.confident, out.reasons = False, out.reasons + (f"implausible {out.nm_per_px:.3g} nm/px",)
    return out


def _overlap(a: Box | None, b: Box | None, reach: int = 2) -> bool:
    """Whether two half-open boxes lie fewer than ``reach`` px apart in both directions:
    by default, share a pixel or stand within a pixel of each other (a stroke's rows and
    columns at half size may round either way); with ``reach`` 0, share a pixel.  False
    where either is missing."""
    if a is None or b is None:
        return False
    return max(a[0], b[0]) - min(a[2], b[2]) < reach and max(a[1], b[1]) - min(a[3], b[3]) < reach


def _bar_first(img: np.ndarray, cands: list[tuple[Bar, Label]]) -> list[ScaleBar]:
    """Readings of candidate (bar, label line) pairs: the lowest ``_MAX_OCR`` lines (bars
    with a gap, FEI's, first; bar_find.comes_last's last), each OCR'd and checked;
    bars measured on ``img``."""
    if not cands:
        return []
    cands.sort(key=lambda c: (comes_last(c[0], img.shape),  # bars under 3 % of the width, above the bottom quarter, last
                              -(c[0].y0 / img.shape[0] + 0.3 * (c[0].gap is not None))))  # bottom first
    cands = cands[:_MAX_OCR]
    words = ocr_lines([label for _, label in cands])  # every line in one Tesseract run
    return [_scale_bar(img, bar, label, reading, _BAR_FIRST_SLACK) for (bar, label), w in zip(cands, words)
            if (reading := read_label(w, label)) is not None]


def _own_ink_lines(lines_img: np.ndarray, unread: list[tuple[Bar, list[Label]]]) -> list[tuple[Bar, Label]]:
    """A second try, for bars the first read nothing beside (each with its lines cut at
    its grey): their lines cut against another grey (own_ink.label_inks; a nearer one
    where that cut found no line at all), in
    ``lines_img`` (the frame, denoised where it is a noisy figure: denoise.py).  A deeper
    cut sees a faint glyph or a small point less, so the doubts of the line cut at the
    bar's grey that it overlaps are its doubts too: a '100 nm' whose faint '0' the bar's
    cut saw must not become a plain '10 nm'."""
    return [(b, _lend_doubts(lab, at_bar_grey) if ink.deeper else lab)
            for b, at_bar_grey in unread for ink in label_inks(lines_img, b, lined=bool(at_bar_grey))
            for lab in text_lines(lines_img, b, ink.grey)]


def _lend_doubts(label: Label, at_bar_grey: list[Label]) -> Label:
    """``label`` with the doubts of the lines in ``at_bar_grey`` whose boxes overlap it,
    over all its columns (their columns are another crop's)."""
    lent = {why for other in at_bar_grey for *_, why in other.spoilers if _overlap(label.box, other.box, reach=0)}
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
    if (noisy := noisy_ends(img, bar, length)) is not None:
        why.append(noisy)
    if bar.gap is not None and end_ticks(img, bar) is None:
        why.append("split bar without clear end ticks")  # FEI measures tick to tick, not tip to tip
    nm = value * NM[unit]
    if not PLAUSIBLE_NM_PER_PX[0] <= nm / length <= PLAUSIBLE_NM_PER_PX[1]:  # finer than 4 pm/px or coarser than 0.1 mm/px
        why.append(f"implausible {nm / length:.3g} nm/px")
    bar_box = (bar.x0, bar.y0, bar.x1, bar.y1)
    return ScaleBar(length, value, unit, nm, nm / length, text, bar_box, bar_box, not why, tuple(why),
                    bar=bar, label_bbox=label.box)
