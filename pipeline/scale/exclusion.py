"""What of the frame is annotation, not sample: the bar, its label and the band or box under them."""
from __future__ import annotations

import cv2
import numpy as np

from .bar_find import Bar
from .label import Box


def exclusion(img: np.ndarray, bar: Bar, label: Box) -> Box:
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
    at_bottom, at_top = box[3] >= h - below, box[1] <= below
    if not (at_bottom or at_top):
        return box
    # only the rows read below: from the band's furthest reach to the frame's edge (a
    # full-frame palette cost 0.1 s of a 0.5 s reading on a 2048² frame)
    lo, hi = (0 if at_top else max(0, box[1] - reach)), (h if at_bottom else min(h, box[3] + reach))
    if (rows := _drawn_rows(img, bar, (x0, y0, x1, y1), (lo, hi))) is None:
        return box
    drawn, light = np.zeros(h, bool), np.zeros(h)
    drawn[lo:hi], light[lo:hi] = rows, (u8[lo:hi] >= 247).mean(axis=1)
    if at_bottom and drawn[box[3]:].all():
        top = box[1]
        while top > max(0, box[1] - reach) and drawn[top - 1] and light[top] < 0.9:
            top -= 1
        return 0, top, w, h
    if at_top and drawn[:box[1]].all():
        bottom = box[3]
        while bottom < min(h, box[3] + reach) and drawn[bottom] and light[bottom - 1] < 0.9:
            bottom += 1
        return 0, 0, w, bottom
    return box


def _drawn_rows(img: np.ndarray, bar: Bar, content: Box, rows: tuple[int, int]) -> np.ndarray | None:
    """Which of ``rows`` (first, end) software drew: every pixel one of the band's few grey
    values, or next to ink.

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
    r0, r1 = max(0, rows[0] - 1), min(h, rows[1] + 1)  # a row of context each side: "next to ink" looks there
    part = img[r0:r1]
    inky, in_palette = np.abs(part - fgv) < 0.5, np.isin(part, palette)
    near_ink = cv2.dilate(inky.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    clean = in_palette | near_ink | (np.abs(part - paper_value) <= 0.02)  # + dim text (Helios: 4)
    ruled = (in_palette & inky).mean(axis=1) >= 0.9  # a frame line
    drawn = (((part == paper_value).mean(axis=1) >= 0.3) | ruled) & (clean.mean(axis=1) >= 0.98)
    return drawn[rows[0] - r0:rows[1] - r0]
