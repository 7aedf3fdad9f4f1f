"""A second reader of the label line (RapidOCR's recogniser), asked only about doubts it can settle.

Why: on small bold serif labels Tesseract reads µ as 'p' and the µ-shape check cannot
decide, or it reads '1um' as 'lum': the label is flagged though it is plain to a person.
RapidOCR's recognition network (PaddleOCR models inside the ``rapidocr-onnxruntime``
wheel, Apache-2.0; nothing downloaded at run time) reads those lines as '5 μm' and
'1 um'.  Measured on the label lines of the shared real frames and the held-out figures
it also reads 'nm' as 'mm' now and then, so it never decides anything alone:

* soft doubts only (low confidence, an odd spelling, an unclear µ shape that Tesseract
  read as µ) are lifted when it reads the same value and unit, spelled plainly;
* a 'pm' that Tesseract read where the glyph shape cannot tell p from µ becomes µm only
  when picometres would give an impossible nm/px, micrometres a plausible one, and this
  reader reads the same value in µm (where picometres would make the frame under 1 nm
  wide, parse.micro_by_field has already settled it without this reader).
Every hard doubt (glyph and dot counts, placement, bar shape, another bar) stays.
Without the package (not importable) the label keeps its doubts: the reader flags as before.
The recogniser is loaded on first use (about 0.5 s once per process), and each call
reads one line (15-50 ms), only for a reading that would otherwise be flagged.
"""
from __future__ import annotations

import re
import threading
from functools import cache

import cv2
import numpy as np

from .label import Label
from .parse import SOFT_DOUBTS as _SOFT

_MIN_SCORE = 0.9  # the recogniser's own score; its misreadings on held-out lines scored 0.84-0.99
_PLAIN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s?(nm|um|µm|μm)\s*$")
_MICRO_DOUBT = re.compile(r"^(glyph shape .* disagrees with OCR 'pm'|glyph shape unclear, OCR says µ|implausible .* nm/px)$")
PLAUSIBLE_NM_PER_PX = (4e-3, 1e5)  # reader.py's bounds: finer than 4 pm/px or coarser than 0.1 mm/px is no micrograph
# one load, and one line at a time in the process: reader.find_scale_bar reads the half-size
# frame in a thread of its own, and frames may be read from several threads
_ENGINE_LOCK = threading.Lock()


@cache
def _engine():  # noqa: ANN202 - RapidOCR when importable, else None
    """The recogniser, loaded once; None when rapidocr-onnxruntime is not installed."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    return RapidOCR()


def available() -> bool:
    """Whether the second reader is installed (the `[ocr]` extra): benchmarks say so."""
    with _ENGINE_LOCK:
        return _engine() is not None


def read_line(label: Label) -> tuple[float, str, float] | None:
    """(value, unit, score) as the recogniser reads the label line, when it is a plain
    number + nm/µm; None otherwise or without the package.  The line is drawn dark on
    white at ~48 px glyph height, the size its recognition network was trained at."""
    with _ENGINE_LOCK:
        engine = _engine()
    if engine is None:
        return None
    s = float(np.clip(48 / max(1, label.soft.shape[0]), 0.5, 8.0))
    big = cv2.resize(label.soft.astype(np.float32), None, fx=s, fy=s,
                     interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    u8 = cv2.copyMakeBorder(np.clip(255 - 255 * big, 0, 255).astype(np.uint8), 8, 8, 8, 8,
                            cv2.BORDER_CONSTANT, value=255)
    with _ENGINE_LOCK:
        result, _ = engine(cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR), use_det=False, use_cls=False, use_rec=True)
    if not result or len(result) != 1 or not (m := _PLAIN.match(str(result[0][0]))):
        return None
    return float(m.group(1)), ("nm" if m.group(2) == "nm" else "µm"), float(result[0][1])


def settle(label: Label, reading: tuple[str, float, str, list[str]], length: float
           ) -> tuple[str, float, str, list[str]]:
    """The reading with the doubts the second reader settles lifted (see the module's rules);
    unchanged when it has none it could settle, or the second reader disagrees."""
    text, value, unit, why = reading
    lo, hi = PLAUSIBLE_NM_PER_PX
    no_pico = value * 1e-3 / length < lo and lo <= value * 1e3 / length <= hi  # only µm can be meant
    soft = bool(why) and all(w.startswith(_SOFT) for w in why) and (
        no_pico or not any(w.startswith("glyph shape") for w in why))  # a µ the shape left open: p ruled out
    micro = unit == "pm" and bool(why) and all(_MICRO_DOUBT.match(w) for w in why) and no_pico
    if not (soft or micro) or (second := read_line(label)) is None or second[2] < _MIN_SCORE:
        return reading
    if soft and second[:2] == (value, unit):
        return text, value, unit, []
    if micro and second[:2] == (value, "µm"):
        return text, value, "µm", []
    return reading
