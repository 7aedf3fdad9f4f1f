"""Tesseract, called as little as possible: one process per frame's label lines, every scale in it.

Process start-up dominates Tesseract's time on a label (0.18 s of a 0.2 s run on
a 2-core EPYC), so each line is drawn at several glyph heights (and once
unslanted, for Zeiss italics) and the tiles are stacked into ONE image, and the
lines of a frame go to ONE Tesseract run as the pages of an image list (Tesseract
reads a text file of image paths as a multi-page document, each page laid out on
its own, so a line reads exactly as it would alone).  Each word is mapped back to
its page, its tile and the line's own columns, so words can be matched to glyphs.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytesseract

from .label import Label, upright

Words = list[tuple[float, float, str, float]]  # (x0, x1, text, confidence), in the line's columns


class _TesseractEnv(Mapping):
    """This process's environment, live, with OMP_THREAD_LIMIT=1 unless set.

    Tesseract's OpenMP threads contend for two cores over a one-line image: one
    thread halved its time (0.3 s instead of 0.5-0.7 s per frame, measured). Only
    the Tesseract child gets the limit; the network's OpenMP pool in this process
    keeps its threads, so os.environ itself is not changed."""

    def __getitem__(self, key: str) -> str:  # per key: subprocess asks for each (a copy each time cost 40 copies a run)
        if key == "OMP_THREAD_LIMIT":
            return os.environ.get(key, "1")
        return os.environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter({"OMP_THREAD_LIMIT": "1", **os.environ})

    def __len__(self) -> int:
        return len(os.environ) + ("OMP_THREAD_LIMIT" not in os.environ)


pytesseract.pytesseract.environ = _TesseractEnv()  # the env pytesseract hands to its subprocess


# (glyph height, interpolation, shear): the last undoes an italic slant (Zeiss labels) where
# the line's own slant was not measured; a measured slant sets every tile upright
_VARIANTS = ((40, cv2.INTER_CUBIC, 0.0), (28, cv2.INTER_LINEAR, 0.0), (56, cv2.INTER_LINEAR, 0.0),
             (40, cv2.INTER_CUBIC, 0.25))


def ocr_line(label: Label) -> list[Words]:
    """The line's words at each scale variant: ``ocr_lines`` for one line."""
    return ocr_lines([label])[0]


def ocr_lines(labels: Sequence[Label]) -> list[list[Words]]:
    """Each line's words at each scale variant, from one Tesseract run: (x0, x1, text, confidence).

    Word columns are in the line's own pixels, so a word can be matched to its glyphs.
    A row of databar fields (``label.parts``) is drawn field by field, each its own tile,
    and its words joined again in the row's columns, left to right.
    """
    if not labels:
        return []
    pages = [_page(label) for label in labels]
    with tempfile.TemporaryDirectory(prefix="psdwatch-ocr-") as tmp:
        paths = []
        for i, (image, _, _) in enumerate(pages):
            paths.append(Path(tmp) / f"line{i}.png")
            if not cv2.imwrite(str(paths[-1]), image):
                raise OSError(f"could not write {paths[-1]} for Tesseract")
        listing = Path(tmp) / "lines.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        d = pytesseract.image_to_data(str(listing), config="--psm 6", output_type=pytesseract.Output.DICT)
    words: list[list[Words]] = [[[] for _ in _VARIANTS] for _ in labels]
    for page, text, conf, wx, ww, wy, wh in zip(d["page_num"], d["text"], d["conf"], d["left"], d["width"],
                                                d["top"], d["height"]):
        _, slots, meta = pages[int(page) - 1]
        j = next((j for j, (a, b) in enumerate(slots) if a <= wy + wh / 2 < b), None)
        if text.strip() and j is not None:
            k, c0, sc, pad = meta[j]
            words[int(page) - 1][k].append(((wx - 20 - pad) / sc + c0, (wx + ww - 20 - pad) / sc + c0,
                                            text.strip(), float(conf)))
    return [[sorted(w) for w in line] for line in words]


def _page(label: Label) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int, float, int]]]:
    """The line drawn at every scale variant, tiles stacked: (image, each tile's rows, each
    tile's (variant, first column, scale, pad)), black glyphs on white with a 20 px margin."""
    ys = np.nonzero(label.ink.any(axis=1))[0]
    spans = label.parts or ((0, label.soft.shape[1]),)
    tiles, slots, meta, top = [], [], [], 0
    for k, (height, interp, shear) in enumerate(_VARIANTS):
        shear = label.slant or shear  # a measured italic lean sets every tile upright
        s = float(np.clip(height / max(1, ys[-1] - ys[0] + 1), 0.2, 8.0))
        for c0, c1 in spans:
            big = cv2.resize(label.soft[:, c0:c1].astype(np.float32), None, fx=s, fy=s,
                             interpolation=interp if s > 1 else cv2.INTER_AREA)
            pad = 0
            if shear:  # rows shift left by shear x their height above the bottom; columns stay aligned at mid-height
                pad = int(np.ceil(shear * big.shape[0] / 2)) + 1
                big = upright(big, shear, pad, cv2.INTER_LINEAR)
                if label.slant and k == len(_VARIANTS) - 1:  # the slant's own tile: cut at half ink
                    big = (big > 0.45).astype(np.float32)
            tiles.append(np.clip(255 - 255 * big, 0, 255).astype(np.uint8))
            meta.append((k, c0, (big.shape[1] - 2 * pad) / (c1 - c0), pad))
    width = max(t.shape[1] for t in tiles) + 40
    for i, t in enumerate(tiles):
        tiles[i] = cv2.copyMakeBorder(t, 20, 20, 20, width - 20 - t.shape[1], cv2.BORDER_CONSTANT, value=255)
        slots.append((top, top + tiles[i].shape[0]))
        top += tiles[i].shape[0]
    return np.vstack(tiles), slots, meta
