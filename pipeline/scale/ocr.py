"""Tesseract, called as little as possible: a frame's label lines in one process, every scale in it.

Process start-up dominates Tesseract's time on a label (0.14 s of a 0.16 s run on
a 2-core EPYC), so each line is drawn at several glyph heights (and once
unslanted, for Zeiss italics) and the tiles are stacked into ONE image, and the
lines a reader has found go to ONE Tesseract run as the pages of an image list
(Tesseract reads a text file of image paths as a multi-page document).  Each word
is mapped back to its page, its tile and the line's own columns, so words can be
matched to glyphs.

A page reads exactly as the line would alone only with the LSTM engine: the legacy
engine's adaptive classifier learns from page to page.  So the engine is named
(``--oem 1``, what Debian's tessdata_fast models give anyway); a traineddata without
an LSTM model (Tesseract 3's) is not supported.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytesseract

from .glyphs import upright
from .label import Label

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


_LINE_CONFIG = "--oem 1 --psm 6"  # LSTM only (see above); one uniform block of text per tile stack

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
    words: list[list[Words]] = [[[] for _ in _VARIANTS] for _ in labels]
    for i, rows in enumerate(tesseract_pages([image for image, _, _ in pages], _LINE_CONFIG)):
        _, slots, meta = pages[i]
        for text, conf, wx, wy, ww, wh in rows:
            j = next((j for j, (a, b) in enumerate(slots) if a <= wy + wh / 2 < b), None)
            if j is not None:
                k, c0, sc, pad = meta[j]
                words[i][k].append(((wx - 20 - pad) / sc + c0, (wx + ww - 20 - pad) / sc + c0, text, conf))
    return [[sorted(w) for w in line] for line in words]


def tesseract_pages(images: Sequence[np.ndarray], config: str) -> list[list[tuple[str, float, int, int, int, int]]]:
    """Each 8-bit grey image's words as Tesseract reads it, all from one run: (text,
    confidence, left, top, width, height) in the image's pixels, empty words dropped.

    The images go as PNG files listed one per line in a text file, which Tesseract
    takes as a multi-page document; encoded by OpenCV and written by Python, so a
    temp folder with any characters in its name works (OpenCV's own writer cannot
    open a non-ASCII path on Windows)."""
    pages: list[list[tuple[str, float, int, int, int, int]]] = [[] for _ in images]
    with tempfile.TemporaryDirectory(prefix="psdwatch-ocr-") as tmp:
        if b"\n" in os.fsencode(tmp) or b"\r" in os.fsencode(tmp):
            raise OSError(f"the temp folder's name {tmp!r} holds a line break: Tesseract's image list cannot name it")
        listing = b""
        for i, image in enumerate(images):
            ok, png = cv2.imencode(".png", image)
            if not ok:
                raise ValueError(f"could not encode a {image.shape} {image.dtype} image as PNG for Tesseract")
            path = Path(tmp) / f"line{i}.png"
            path.write_bytes(png.tobytes())
            listing += os.fsencode(path) + b"\n"
        (Path(tmp) / "lines.txt").write_bytes(listing)
        d = pytesseract.image_to_data(str(Path(tmp) / "lines.txt"), config=config, output_type=pytesseract.Output.DICT)
    for page, text, conf, wx, wy, ww, wh in zip(d["page_num"], d["text"], d["conf"], d["left"], d["top"],
                                                d["width"], d["height"]):
        if text.strip() and 1 <= int(page) <= len(pages):  # pages count from 1
            pages[int(page) - 1].append((text.strip(), float(conf), int(wx), int(wy), int(ww), int(wh)))
    return pages


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
