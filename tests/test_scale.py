"""Tests for the scale-bar renderer (scale/draw.py) and reader (scale/reader.py and its parts), with real Tesseract.

The synthetic matrix draws every style in several fonts on 8- and 16-bit noisy,
textured backgrounds with bright particles at 512, 1024 and 2048 px, and counts
each reading as right (nm/px within 1 %), flagged (None or confident=False) or
wrong.  Wrong must be zero: a flagged bar costs a manual check, a wrong one
silently corrupts every particle size in the image.
"""
from __future__ import annotations

import collections
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from psdwatch.pipeline.scale import label, parse, text_first
from psdwatch.pipeline.scale.corpus import LAYOUTS, background, corpus_frame
from psdwatch.pipeline.scale.draw import FONTS as BASE_FONTS
from psdwatch.pipeline.scale.draw import ITALIC_FONTS, MORE_FONTS, STYLES, draw_scale_bar, render_text
from psdwatch.pipeline.scale.reader import find_scale_bar
from tests.conftest import DATA

FEI = DATA / "formats"
FEI_NM_PER_PX = 3.3724e-06 * 1e9  # Scan/PixelWidth of the Helios files
FONTS = ("DejaVuSans", "DejaVuSerif-Bold", "DejaVuSansMono", "hershey_simplex")
ALL_FONTS = BASE_FONTS + MORE_FONTS + ITALIC_FONTS
SIZES = (512, 1024, 2048)


def synthetic(size: int, style: str, font: str, dtype: type, seed: int = 0) -> tuple[np.ndarray, dict, float]:
    """A reproducible test image: (image, truth, nm_per_px)."""
    rng = np.random.default_rng(zlib.crc32(f"{size}{style}{font}{np.dtype(dtype).name}{seed}".encode()))
    nm_per_px = 10 ** rng.uniform(-1.5, 2.5)  # 0.03 nm/px (atomic) .. 300 nm/px
    image, truth = draw_scale_bar(background(size, dtype, rng), nm_per_px, style, rng, font)
    return image, truth, nm_per_px


def classify(result, nm_per_px: float) -> str:
    if result is None or not result.confident:
        return "flagged"
    return "right" if abs(result.nm_per_px / nm_per_px - 1) <= 0.01 else "wrong"


@pytest.mark.slow
def test_synthetic_matrix() -> None:
    table: dict[str, collections.Counter] = {s: collections.Counter() for s in STYLES}
    wrong = []
    for size in SIZES:
        for style in STYLES:
            for k, font in enumerate(FONTS):  # 8- and 16-bit in turn: each style and size gets both
                dtype = (np.uint8, np.uint16)[(k + SIZES.index(size)) % 2]
                image, truth, npp = synthetic(size, style, font, dtype)
                result = find_scale_bar(image)
                verdict = classify(result, npp)
                table[style][verdict] += 1
                if verdict == "wrong":
                    wrong.append((size, style, font, truth["label"], result))
    print("\nstyle   right flagged wrong")
    for style, c in table.items():
        print(f"{style:7s} {c['right']:5d} {c['flagged']:7d} {c['wrong']:5d}")
    total = sum(table.values(), collections.Counter())
    n = sum(total.values())
    print(f"total   {total['right']:5d} {total['flagged']:7d} {total['wrong']:5d}   ({n} images)")
    assert not wrong, wrong
    assert total["right"] >= 0.9 * n


def test_renderer_bar_px_is_exact() -> None:
    """The drawn bar's length, as the reader defines it, equals the reported bar_px."""
    rng = np.random.default_rng(3)
    for style in ("band", "box", "bare"):
        for _ in range(5):
            img = np.full((800, 800), 20000, np.uint16)
            out, t = draw_scale_bar(img, rng.uniform(0.1, 50), style, rng, "DejaVuSans")
            x0, y0, x1, y1 = t["bar_bbox"]
            row = out[(y0 + y1) // 2, x0 - 1:x1 + 1].astype(float)
            bg, fg = (65535.0, 0.0) if style == "box" else (0.0 if style == "band" else 20000.0, 65535.0)
            assert abs(((row - bg) / (fg - bg)).sum() - t["bar_px"]) < 0.01
    for _ in range(5):  # fei: tick centre to tick centre, ticks just above the bar
        img = np.full((600, 600), 30000, np.uint16)
        out, t = draw_scale_bar(img, rng.uniform(0.1, 50), "fei", rng, "DejaVuSans")
        x0, y0, x1, y1 = t["bar_bbox"]
        above = out[y0 - 1].astype(float) / 65535
        left, right = np.arange(x0 - 1, x0 + 6), np.arange(x1 - 6, x1 + 1)
        centre = [(above[c] * c).sum() / above[c].sum() for c in (left, right)]
        assert abs(centre[1] - centre[0] - t["bar_px"]) < 0.01


def test_micro_sign_never_taken_from_a_p() -> None:
    """The glyph-shape check that overrides Tesseract's 'p' for 'µ' must never call a real p 'µ'.

    'pm' read as 'µm' would be a 10^6 error, so every font (serif, sans, mono,
    bold, italic) is tried at 6-60 px and sub-pixel offsets.
    """
    rng = np.random.default_rng(0)
    calls = collections.Counter()
    for font in ALL_FONTS:
        for height in np.arange(6, 60, 0.7):
            for text, want in (("500 pm", "p"), ("200pm", "p"), ("50 µm", "µ"), ("1 µm", "µ"), ("20 nm", "u")):
                if font.startswith("hershey") and want == "µ":
                    continue  # Hershey fonts have no µ
                cover = render_text(text, font, height)
                shift = np.float32([[1, 0, rng.uniform(0, 1)], [0, 1, rng.uniform(0, 1)]])
                cover = cv2.warpAffine(cover.astype(np.float32), shift, (cover.shape[1] + 2, cover.shape[0] + 2))
                ink = cover > 0.5
                heights = cv2.connectedComponentsWithStats(ink.astype(np.uint8))[2][1:, 3]
                lh = int(np.median(heights[heights >= 0.3 * heights.max()]))
                got = parse._micro_or_pico(label.Label(cover, ink, (0, 0, 0, 0), (0, 0), lh, 0))
                calls[(want, got)] += 1
    assert calls[("p", "µ")] == 0, calls
    assert calls[("µ", "µ")] >= 0.8 * sum(v for (w, _), v in calls.items() if w == "µ"), calls


@pytest.mark.parametrize("bits", ["8bits", "16bits"])
def test_real_fei_databar(bits: str) -> None:
    path = FEI / f"FEI-Helios-Ebeam-{bits}.tif"
    assert path.exists(), f"{path} is missing from the shared data"
    result = find_scale_bar(tifffile.imread(path))
    assert result is not None and result.confident, result
    assert (result.value, result.unit) == (500.0, "µm")
    assert abs(result.nm_per_px / FEI_NM_PER_PX - 1) < 0.02
    assert result.exclude_bbox == (0, 471 - 29, 512, 471)  # the whole databar


def test_no_bar_gives_none() -> None:
    rng = np.random.default_rng(7)
    assert find_scale_bar(background(1024, np.uint16, rng)) is None
    assert find_scale_bar(background(512, np.uint8, rng)) is None
    assert find_scale_bar(np.zeros((256, 256))) is None
    patches = sorted((DATA / "pt-alumina-haadf").glob("*.tif"))
    for path in [p for p in patches if not p.name.endswith("_labels.tif")][:10]:
        assert find_scale_bar(tifffile.imread(path)) is None, path


def test_float_input_and_any_range() -> None:
    image, truth, npp = synthetic(1024, "band", "DejaVuSans", np.uint16)
    result = find_scale_bar(image.astype(np.float32) * 3e-4 - 7.0)
    assert classify(result, npp) == "right"


def test_label_cut_by_image_edge_is_not_trusted() -> None:
    """Cropping through the label must never give a confident wrong value."""
    for style in ("band", "bare", "box"):
        image, truth, npp = synthetic(1024, style, "DejaVuSans", np.uint8, seed=5)
        x0, y0, x1, y1 = truth["annotation_bbox"]
        bx0, _, bx1, _ = truth["bar_bbox"]
        for cut in (x0 + (x1 - x0) // 3, x1 - (x1 - x0) // 3):
            part = image[:, cut:] if cut < (bx0 + bx1) // 2 else image[:, :cut]
            assert classify(find_scale_bar(part), npp) != "wrong", (style, cut)


def test_exclusion_covers_annotation() -> None:
    for style in STYLES:
        image, truth, npp = synthetic(1024, style, "DejaVuSans", np.uint16, seed=2)
        result = find_scale_bar(image)
        assert result is not None
        ax0, ay0, ax1, ay1 = truth["annotation_bbox"]
        ex0, ey0, ex1, ey1 = result.exclude_bbox
        assert ex0 <= max(ax0, 0) + 2 and ey0 <= ay0 + 2 and ex1 >= ax1 - 2 and ey1 >= ay1 - 2, (style, truth, result)
        assert (ex1 - ex0) * (ey1 - ey0) <= 1.5 * (ax1 - ax0) * (ay1 - ay0), (style, truth, result)


def test_a_2048_frame_with_a_band_is_read() -> None:
    """A 2048 x 2048 frame with its bar on a band: read right.  Its time (one Tesseract
    run per candidate keeps such a frame under a second) is measured by the benchmark
    (bench/scale_bars.py, BENCHMARKS.md), not asserted here: a test's clock on a busy
    machine says nothing about the reader."""
    image, truth, npp = synthetic(2048, "band", "DejaVuSans", np.uint16, seed=1)
    assert classify(find_scale_bar(image), npp) == "right"


def test_a_2048_frame_without_a_bar_gives_nothing() -> None:
    """The reader's worst case for time (bench/scale_bars.py measures it): a noisy 2048 x
    2048 frame with no bar, where the text-first reader searches the bottom and top bands
    after the bar-first reader found nothing, and the frame is read again at half size.
    Nothing is found."""
    assert find_scale_bar(background(2048, np.uint16, np.random.default_rng(1))) is None


@pytest.mark.slow
def test_layout_corpus() -> None:
    """Every published layout: none read wrong, most read right (bench/scale_bars.py runs more)."""
    table, wrong = {}, []
    for layout in LAYOUTS:
        counts = collections.Counter()
        for i in range(10):
            image, truth = corpus_frame(layout, i)
            verdict = classify(find_scale_bar(image), truth["nm_per_px"])
            counts[verdict] += 1
            if verdict == "wrong":
                wrong.append((layout, i, truth["label"], truth["font"]))
        table[layout] = counts
    print("\n" + "\n".join(f"{k:9s} {dict(v)}" for k, v in table.items()))
    assert not wrong, wrong
    assert all(c["right"] >= 6 for c in table.values()), table
    assert sum(c["right"] for c in table.values()) >= 0.8 * 10 * len(LAYOUTS), table


@pytest.mark.parametrize("layout,index", [("dataline", 1), ("dataline", 3), ("zeiss", 0), ("zeiss", 1)])
def test_databar_fields_are_not_the_label(layout: str, index: int) -> None:
    """'WD = 5.6 mm', 'HFW', 'Mag = 161 X' share the bar's line or cell: the label is the value by the bar."""
    image, truth = corpus_frame(layout, index)
    result = find_scale_bar(image)
    assert result is not None and result.confident, (truth["label"], result)
    assert abs(result.nm / truth["bar_nm"] - 1) < 1e-6, (truth["label"], result.text)
    assert abs(result.nm_per_px / truth["nm_per_px"] - 1) <= 0.01


def test_label_token_is_chosen_by_place_not_by_pattern() -> None:
    """Of the words in a line, the label is the number + unit next to the bar, never a field's value."""
    def words(*texts: str) -> list[tuple[float, float, str, float]]:
        return [(20.0 * i, 20.0 * i + 15, t, 90.0) for i, t in enumerate(texts)]
    left = label.Label(np.zeros((10, 200)), np.zeros((10, 200), bool), (0, 0, 0, 0), (0, 0), 10, 0,
                        "left", (200.0, 300.0))
    assert parse._token(words("x2,000", "10", "µm"), left)[0] == "10 µm"
    assert parse._token(words("WD:", "28.0", "mm"), left) is None  # a field ends the line, not a label
    # OCR split the field's value at its faint point (a real JEOL "WD 7.8mm" read "WD 7 8mm"):
    # still the field's, not a label "8mm" to stand against the bar's own
    assert parse._token(words("WD", "7", "8mm"), left) is None
    assert parse._token(words("HFW", "2", ".", "5", "µm"), left) is None
    assert parse._token(words("x2,000", "7", "10", "µm"), left)[0] == "10 µm"  # no field's name before the pieces
    spaced = [(0.0, 15.0, "spot", 90.0), (20.0, 35.0, "3", 90.0), (60.0, 75.0, "500", 90.0), (80.0, 95.0, "nm", 90.0)]
    assert parse._token(spaced, left)[0] == "500 nm"  # a field's bare value a field's space away: the label stands
    texts = [(20.0 * i, 20.0 * i + 15, t) for i, t in enumerate(("WD", "1", "2", "3", "4mm"))]
    assert parse.field_before(texts, 4, 5.0) is None and parse.field_before(texts, 3, 5.0) == 0  # two pieces at most
    after = [(0.0, 15.0, "spot"), (60.0, 75.0, "3"), (20.0, 50.0, "500nm")]  # the '3' stands after the value
    assert parse.field_before(after, 2, 5.0) is None
    def placed(*texts: str) -> list:
        return [text_first.Word(t, (20 * i, 0, 20 * i + 15, 10), 90.0, 1) for i, t in enumerate(texts)]
    assert not text_first.label_tokens(placed("WD", "7", "8mm"))
    assert [t.text for t in text_first.label_tokens(placed("X130,000", "WD", "7", "8mm", "100nm"))] == ["100nm"]
    def boxed(*words: tuple[str, int, int, int, int]) -> list:  # (text, x0, x1, y0, y1)
        return [text_first.Word(t, (x0, y0, x1, y1), 90.0, 1) for t, x0, x1, y0, y1 in words]
    # text first's bounds on the pieces walked back over: within half a glyph height of the
    # next word, and on the value's line; a lone point on the baseline is on it
    far = boxed(("WD", 0, 15, 0, 10), ("7", 20, 30, 0, 10), ("8mm", 45, 70, 0, 10))  # 15 px, 1.5 glyphs, apart
    assert [t.text for t in text_first.label_tokens(far)] == ["8mm"]
    below = boxed(("WD", 0, 15, 0, 10), ("7", 20, 30, 30, 40), ("8mm", 33, 58, 0, 10))  # the piece on another line
    assert [t.text for t in text_first.label_tokens(below)] == ["8mm"]
    point = boxed(("HFW", 0, 20, 0, 10), ("2", 22, 28, 0, 10), (".", 29, 31, 8, 10), ("5µm", 33, 55, 0, 10))
    assert not text_first.label_tokens(point)
    assert parse._token(words("10", "µm", "WD", "5"), left) is None  # the label is not next to the bar
    right = label.Label(left.soft, left.ink, left.box, (0, 0), 10, 0, "right", (-100.0, -1.0))
    assert parse._token(words("10µm", "WD", "=", "5.6", "mm"), right)[0] == "10µm"
    over = label.Label(left.soft, left.ink, left.box, (0, 0), 10, 0, "over", (0.0, 40.0))
    assert parse._token(words("500", "nm", "EHT", "=", "3.49", "kV", "WD", "=", "2.8", "mm"), over)[0] == "500 nm"
    assert parse._token(words("EHT", "=", "3.49", "kV", "500", "nm"), over) is None  # not over the bar


def test_a_label_wider_than_its_bar_is_placed_over_it_centred_or_flush_with_an_end() -> None:
    """parse.placed_over: centred on the bar as before, or wider than it and flush with one
    of its ends within a quarter glyph height (6 px at most); a wide word standing off
    both ends is no label."""
    bar, lh = (72.0, 104.0), 24
    assert parse.placed_over(6.0, 102.0, bar, lh)        # JEOL: right ends 2 px apart
    assert parse.placed_over(70.0, 166.0, bar, lh)       # left-aligned
    assert parse.placed_over(60.0, 116.0, bar, lh)       # centred, as before
    assert not parse.placed_over(0.0, 90.0, bar, lh)     # ends 14 px short of the bar's: a field beside it
    assert parse.placed_over(6.0, 98.0, bar, lh) and not parse.placed_over(6.0, 97.0, bar, lh)  # 6 px, a quarter of 24
    assert not parse.placed_over(6.0, 96.0, bar, 40)     # 8 px: never more than 6, whatever the glyphs' height
    assert not parse.placed_over(292.0, 296.0, (0.0, 290.0), lh)  # narrower than the bar: flush is no matter, its centre must be over it


def test_tesseract_runs_on_one_thread_unless_the_environment_says_otherwise(monkeypatch):
    """Tesseract's OpenMP threads contend for the cores over a one-line image (ocr.py):
    its child process gets OMP_THREAD_LIMIT=1, or the limit a user set."""
    import subprocess

    import pytesseract

    from psdwatch.pipeline.scale import ocr  # noqa: F401 - installs the environment

    def child_sees() -> list[str]:
        return subprocess.run(["sh", "-c", "echo ${OMP_THREAD_LIMIT:-unset} $PSDWATCH_PROBE"],
                              env=pytesseract.pytesseract.environ, capture_output=True, text=True,
                              check=True).stdout.split()

    monkeypatch.setenv("PSDWATCH_PROBE", "passed-on")  # the rest of the environment goes with it
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    assert child_sees() == ["1", "passed-on"]
    assert "OMP_THREAD_LIMIT" not in os.environ  # only the child gets it: the network's OpenMP pool keeps its threads
    monkeypatch.setenv("OMP_THREAD_LIMIT", "3")
    assert child_sees() == ["3", "passed-on"]


def test_label_lines_read_in_one_tesseract_run_read_as_each_alone():
    """A frame's candidate label lines go to ONE Tesseract run as the pages of an image list
    (ocr.py): each page must be laid out and read on its own, its words mapped back to its
    own line - the same words, confidences and columns as the line read alone, and as
    the line's image handed to pytesseract itself.  The lines
    are those of the real micrographs (a Hitachi ruler's row of fields among them) and of
    corpus frames with labels over and beside their bars, so a word landing on another
    page's line, or a page read differently for its neighbours, would show."""
    import pytesseract

    from psdwatch.pipeline.io.image import load_image
    from psdwatch.pipeline.scale import bar_find, ocr
    from psdwatch.pipeline.scale.ocr import ocr_line, ocr_lines

    frames = [load_image(p).data for p in sorted((DATA / "scalebars-real").iterdir())
              if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif")]
    frames += [corpus_frame(layout, 0)[0] for layout in ("beside", "dataline", "italic")]
    lines = []
    for img in frames:
        img = np.asarray(img, np.float32)
        img = (img - img.min()) / (img.max() - img.min())
        lines += [lab for b in bar_find.find_bars(img) for lab in label.text_lines(img, b)]
    assert len(lines) >= 12 and any(lab.parts for lab in lines) and len({lab.side for lab in lines}) >= 2
    together = ocr_lines(lines)
    alone = [ocr_line(lab) for lab in lines]
    assert together == alone
    images = [ocr._page(lab)[0] for lab in lines[::7]]  # and as an image handed to pytesseract, not a list
    direct = []
    for image in images:
        d = pytesseract.image_to_data(image, config=ocr._LINE_CONFIG, output_type=pytesseract.Output.DICT)
        direct.append([(t.strip(), float(c), x, y, w, h) for t, c, x, y, w, h
                       in zip(d["text"], d["conf"], d["left"], d["top"], d["width"], d["height"]) if t.strip()])
    assert ocr.tesseract_pages(images, ocr._LINE_CONFIG) == direct
    assert sum(any(scale for scale in words) for words in alone) >= len(lines) // 2  # mostly words: a mix-up shows
    assert ocr_lines([]) == []
