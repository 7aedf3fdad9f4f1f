"""Label text -> value and unit, trusted only where the text agrees with the glyphs.

Tesseract's confusions on scale-bar fonts are undone ('S00' -> 500, 'urn' -> um), then
checked: glyph and decimal-point counts, the shape of the µ (Tesseract often says 'p',
a 10^6 error), a 1-2-5 value, the words' place next to the bar.  A doubt is a reason
in the returned list, never a silent correction.
"""
from __future__ import annotations

import collections
import re

import cv2
import numpy as np

from .glyphs import glyph_pieces
from .label import Label, token_label
from .ocr import Words
from .unit_letter import BOWL, first_letter

DIGIT_LIKE = "SsOoIilL|"  # letters Tesseract puts in numbers: 5, 0 and 1 in small or bold fonts
_LABEL = re.compile(rf"^([0-9{DIGIT_LIKE}]+(?:[.,][0-9{DIGIT_LIKE}]+)?)\s*([A-Za-zµÅ]+)$")
_DIGITS = str.maketrans(DIGIT_LIKE, "550011111")
_LEADING_ONLY = "siL"  # read as 5, 1, 1 only first, before a known unit: "2sum" is no 25 µm
_MICRO = ("um", "µm", "ym", "yum", "yµm")  # how Tesseract spells µm
_UNIT = {**{u: "µm" for u in _MICRO}, "nm": "nm", "pm": "pm", "Å": "Å", "A": "Å", "mm": "mm"}
NM = {"nm": 1.0, "µm": 1e3, "pm": 1e-3, "Å": 0.1, "mm": 1e6}
_NICE = (1.0, 2.0, 5.0)
# Zeiss SmartSEM also draws 3-series bars (300 nm), and some software 2.5-series ones (25 µm);
# Tesseract also reads some 5s as 3 and a '0.5' as '2.5': see _uncommon_values.
_ALSO = (3.0, 2.5)
_UNCOMMON = "uncommon bar value"
_RARE_UNITS = ("mm",)  # a low-magnification SEM bar; on a 5 px label Tesseract read 'nm' as 'mm' at 3 of 4 sizes
LONE = "read at one OCR scale only"  # no other scale read that value: on labels under ~10 px a 5 can read 2
SOFT_DOUBTS = _SOFT = ("low OCR confidence", "unusual label spelling", "glyph shape unclear", LONE)  # lifted by a second reading
# Words before a number that make it another field of a databar, not the bar's label.
_FIELDS = re.compile(r"(?i)^\W?(wd|hfw|eht|mag|hv|fov|width|det|spot|pixel|dwell|curr|tilt|[^=:]*[=:])$")
_PIECE = re.compile(r"^[0-9.,]+$")  # a piece of a field's value that OCR split off ("WD 7 8mm" for "WD 7.8mm")
TWO_VALUES = "two values on the label's line"  # a hard doubt: which is the bar's is not known
_MIN_CONF = 50.0
# Under this, Tesseract's word is a guess: two such agreeing lift nothing (a 5 px italic
# '500nm' was read '200nm' at confidence 0 and 5, and '900nm' at 64).
_GUESS_CONF = 10.0
_GUESS = "OCR confidence under 10 (a guess)"
_MIN_CONF_UNCOMMON = 80.0  # a 3- or 2.5-series value or mm is rare: each scale must read it plainly (real Zeiss '300 nm': 92-95)
_UNSURE_UNCOMMON = "uncommon reading at OCR confidence"


def _token(words: Words, label: Label
           ) -> tuple[str, float, float, float, tuple[float, float]] | None:
    """The words that are the bar's label: a number and a unit, placed where a label goes;
    None when there is none, or more than one (``_tokens``)."""
    found = _tokens(words, label)
    return found[0] if len(found) == 1 else None


def field_before(words: list[tuple[float, float, str]], i: int, near: float) -> int | None:
    """The index of the databar field's name ("WD", "HFW", "=", ":") that the word at
    ``i`` is the value of, else None: the word just before it, or the word before one
    or two bare pieces of a number that each end within ``near`` px before the next word
    (2 px of overlap allowed; ``words``: (x0, x1, text), in reading order: a piece that
    stands after the value, out of order, is none).  OCR splits a field's value where its
    point is faint: a real JEOL databar's "WD 7.8mm" was read "WD 7 8mm" at one size of
    four (the pieces 0.33 glyph heights apart), and the "8mm" so read, a candidate with
    doubts of its own, disagreed with the bar's "100nm" and flagged the frame.  Fields
    on a databar stand wider apart than that, so a label after a field whose value is a
    bare number ("spot 3    500 nm") is still a label."""
    k = i - 1
    while k >= max(0, i - 2) and _PIECE.match(words[k][2]) and -2 <= words[k + 1][0] - words[k][1] <= near:
        k -= 1
    return k if k >= 0 and _FIELDS.match(words[k][2]) else None


def placed_over(x0: float, x1: float, bar_x: tuple[float, float], lh: float) -> bool:
    """Whether words at columns ``x0``-``x1`` stand where the label over (or under) a bar
    at columns ``bar_x`` goes: centred on it, or, wider than the bar, flush with one of
    its ends (within a quarter of a glyph height, 3 px at least and 6 at most: an OCR
    word's box ends within a stroke of its ink; more would let a field of a databar row
    stand flush by chance).

    A JEOL databar draws its '100nm' right-aligned under the bar; at X30,000 the bar is
    32 px and the label three times as wide, its centre a bar length left of the bar's."""
    w, bar_w = x1 - x0, bar_x[1] - bar_x[0]
    if bar_x[0] - 0.1 * w <= (x0 + x1) / 2 <= bar_x[1] + 0.1 * w:
        return True
    return w > bar_w and min(abs(x1 - bar_x[1]), abs(x0 - bar_x[0])) <= max(3.0, min(0.25 * lh, 6.0))


def _tokens(words: Words, label: Label) -> list[tuple[str, float, float, float, tuple[float, float]]]:
    """Every distinct number + unit placed where a label goes: (text, x0, x1, confidence,
    (the number's word's confidence, the unit's)).

    Over or under the bar the label is centred on it, or flush with one of its ends
    (placed_over); beside it, it is the word group next to the bar.  A value after "WD", "HFW", "=" or ":" is another field (field_before).  Two
    distinct values on a line (a ruler's row of databar fields) are both returned:
    the caller must not pick one.
    """
    found, spans = [], [(w[0], w[1], w[2]) for w in words]
    for i in range(len(words)):
        if field_before(spans, i, 0.5 * label.lh) is not None:
            continue
        for j in (i, i + 1):
            if j >= len(words) or not _match(text := " ".join(w[2] for w in words[i:j + 1])):
                continue
            x0, x1 = words[i][0], words[j][1]
            if label.side == "over":
                ok = placed_over(x0, x1, label.bar_x, label.lh)
            else:
                ok = j == len(words) - 1 if label.side == "left" else i == 0
            if ok:
                found.append((text, x0, x1, min(w[3] for w in words[i:j + 1]), (words[i][3], words[j][3])))
    if found and len({f[0].replace(" ", "") for f in found}) == 1:
        return [min(found, key=lambda f: len(f[0].split()))]
    return found


def read_label(readings: list[Words], label: Label
          ) -> tuple[str, float, str, list[str]] | None:
    """The first scale's reading if nothing is doubtful, else two scales that agree.

    Soft doubts (low confidence, a corrected spelling like 'S00' or 'urn') are lifted
    when two scales give the same value and unit; hard doubts never are.  Any
    scale that reads another value with no hard doubt of its own is a hard doubt
    for all: on a small label '100' and '10' may both pass the glyph count.  Doubts
    lifted by agreement do not stand against another value read at as many scales,
    doubtful or not (an italic '10um' read '10Oum' at two sizes, confidence 29-38, and
    '10um' at two whose glyph count failed); one stray scale of four does not spoil three.  A value
    that one scale alone reads, the others reading nothing, is a soft doubt: an 8 px
    italic '5 µm' was read '2 um' at one scale of four, with nothing to oppose it (2 of
    12 noise draws); the text finder or the second reader may still confirm it.
    """
    seen: list[tuple[str, float, str, list[str]]] = []
    two: list[tuple[str, float, str, list[str]]] = []  # the first value of each scale that read two
    unparsed: list[tuple[str, float]] = []  # a scale's one label token that parsed to no reading: (text, its number's confidence)
    for words in readings:
        found = _tokens(words, label)
        if found and (reading := _reading(found[0], label)) is not None:
            (seen if len(found) == 1 else two).append(reading)
        elif len(found) == 1:
            unparsed.append((found[0][0], found[0][4][0]))
    if two:  # a scale read two values where the label goes (fields on a ruler's row): which
        first = (seen or two)[0]  # is the bar's is not known, whatever the other scales read
        return first[0], first[1], first[2], first[3] + [f"{TWO_VALUES} ({len(two)} of {len(readings)} OCR scales)"]
    seen, disputed = _uncommon_values(seen, unparsed, len(readings))
    plain = lambda ws: all(w.startswith(_SOFT) for w in ws)  # noqa: E731 - no hard doubt
    chosen = next(((i, r) for i, r in enumerate(seen) if not r[3]), None)
    lifted = chosen is None
    if lifted:  # two scales that agree lift their soft doubts
        chosen = next(((i, (t, v, u, [])) for i, (t, v, u, ws) in enumerate(seen) if plain(ws) and any(
            (v2, u2) == (v, u) and plain(ws2) for j, (_, v2, u2, ws2) in enumerate(seen) if j != i)), None)
    if chosen is None:
        return seen[0] if seen else None
    text, value, unit, why = chosen[1]
    votes = collections.Counter((v, u) for _, v, u, _ in seen)
    if len(readings) > 1 and votes[(value, unit)] < 2:
        why = why + [f"{LONE} (of {len(readings)})"]
    others = sorted({f"{v:g} {u}" for _, v, u, ws in seen if (v, u) != (value, unit)
                     and (plain(ws) or (lifted and votes[(v, u)] >= votes[(value, unit)]))}
                    | ({disputed} if disputed and disputed != f"{value:g} {unit}" else set()))
    if others:
        why = why + [f"OCR scales disagree: {text!r} and {', '.join(others)}"]
    return text, value, unit, why


def _reading(token: tuple[str, float, float, float, tuple[float, float]], label: Label) -> tuple[str, float, str, list[str]] | None:
    """One scale's token parsed and checked against the glyphs in its columns."""
    text, x0, x1, conf, (number_conf, unit_conf) = token
    part = label if x0 <= 0.5 * label.lh and x1 >= label.ink.shape[1] - 0.5 * label.lh else token_label(label, x0, x1)
    if (parsed := _parse(text, part)) is None:
        return None
    value, unit, why = parsed
    if conf < _GUESS_CONF:
        why.append(_GUESS)  # a hard doubt: agreement with another scale does not lift it
    elif conf < _MIN_CONF:
        why.append(f"low OCR confidence {conf:.0f}")
    if f"{_UNCOMMON} {value:g}" in why and number_conf < _MIN_CONF_UNCOMMON:  # a 3- or 2.5-series number
        why.append(f"{_UNSURE_UNCOMMON} {number_conf:.0f} (the number)")
    if f"{_UNCOMMON} {value:g} {unit}" in why and unit_conf < _MIN_CONF_UNCOMMON:  # a rare unit
        why.append(f"{_UNSURE_UNCOMMON} {unit_conf:.0f} (the unit)")
    return text, value, unit, why


def _uncommon_values(seen: list[tuple[str, float, str, list[str]]], unparsed: list[tuple[str, float]],
                     scales: int) -> tuple[list[tuple[str, float, str, list[str]]], str | None]:
    """A 3- or 2.5-series value (300 nm, 25 µm) or a rare unit (mm) trusted only when every
    one of the OCR ``scales`` (four) reads it, the number's word (the unit's, for mm) at
    confidence 80 or more at each; otherwise it is no 1-2-5 value, as before.  Returned
    with the uncommon value that half or more of the scales read without being unanimous:
    it disputes any other reading.

    One scale of the four may read the value's unit in capitals that spell no unit
    (``unparsed``: the label tokens that parsed to no reading, with their number's
    confidence): '300 YM' or '300 pM' beside three '300 um' is the same µm, where its
    number is spelt as theirs and read at 80 or more.  The fourth tile, sheared for
    italics, read an upright Hitachi '300 um' so, its number at 91-96 (the real strip
    enlarged 2x, shrunk 0.7x or blurred); the other three read '300 um' at 95-96.  A
    scale that reads nothing, another number, the number below 80, or letters of
    another unit ('300 YM' beside '300 nm': a µ read as n?) still leaves the value
    untrusted; a rare unit must be read at every scale.

    Zeiss draws such bars, but on other labels Tesseract reads a '5' as '3' at one scale
    of four (measured on the rendered corpus: 7 of 270 frames), so a lone '3' must
    neither pass nor stand against the other scales' '5'; where most scales read '3'
    the odd '5' is as likely the misreading.  On a 7 px italic '50 um' all four read
    '30um', at confidence 24-66 (a font sweep); the real Zeiss '300 nm' reads at 92-95.
    A bar in mm is as rare here and 10^6 from the nm it may be misread for (a 5 px
    '5 nm' read '5 mm' at three sizes of four, confidence 39-67): the same rule.  So is
    a 2.5-series value: a noisy '0.5 µm' read '2.5 pm' at three sizes of four, confidence
    67-78 (held-out figure 164 of the hard series), where the real '25 µm' of a PFIB
    widget reads at 91-94 at all four."""
    uncommon = [r for r in seen if any(w.startswith(_UNCOMMON) for w in r[3])]
    if not uncommon:
        return seen, None
    alike = len({(v, u) for _, v, u, _ in seen}) == 1
    in_capitals = (alike and len(seen) == scales - 1 and len(unparsed) == 1 and seen[0][2] not in _RARE_UNITS
                   and _in_capitals(unparsed[0], {_match(t)[1] for t, *_ in seen}, seen[0][2]))
    unanimous = (scales >= 4 and alike and (len(seen) == scales or in_capitals)
                 and not any(w.startswith(_UNSURE_UNCOMMON) for r in seen for w in r[3]))
    most = collections.Counter((v, u) for _, v, u, _ in uncommon).most_common(1)[0]
    disputed = f"{most[0][0]:g} {most[0][1]}" if not unanimous and 2 * most[1] >= len(seen) else None
    def plainly(w: str, v: float, u: str) -> str:  # the doubt an uncommon reading keeps when not unanimous
        if not w.startswith(_UNCOMMON):
            return w
        return f"unit {u} not read alike at every OCR size" if u in _RARE_UNITS else f"value {v:g} is not a 1-2-5 number"
    return [(t, v, u, list(dict.fromkeys(plainly(w, v, u) for w in ws if not (unanimous and w.startswith(_UNCOMMON)))))
            for t, v, u, ws in seen], disputed


def _in_capitals(token: tuple[str, float], numbers: set[str], unit: str) -> bool:
    """Whether a label token that parsed to no reading is ``numbers``' one number, spelt
    alike and read at confidence 80 or more, in ``unit``'s family written in capitals
    ('300 YM' for '300 um'): _uncommon_values."""
    text, number_conf = token
    m = _match(text)
    if m is None or {m[1]} != numbers or number_conf < _MIN_CONF_UNCOMMON:
        return False
    lower = _UNIT.get(m[2].lower().replace("rn", "m"))
    return lower is not None and unit_family(lower) == unit_family(unit)


_SPECKS = ".:;,'`\""  # punctuation Tesseract makes of a speck after the unit


def _clean(text: str) -> str:
    """One spelling of the micro sign, and no speck read as punctuation after the unit."""
    text = text.strip().replace("μ", "µ").rstrip(_SPECKS)
    return re.sub(r"(?<=[0-9])[,.](?=[A-Za-zµÅ])", " ", text)  # "200,nm": a speck between number and unit


def _match(text: str) -> re.Match | None:
    """The label pattern's match of number + unit, where s, i and L stand for digits only
    as the number's first character and before a unit spelled as Tesseract spells one."""
    m = _LABEL.match(_clean(text))
    if m and any(c in _LEADING_ONLY for c in m.group(1)):
        raw = m.group(2).replace("rn", "m")
        if any(c in _LEADING_ONLY for c in m.group(1)[1:]) or raw not in _UNIT:
            return None
    return m


def _parse(text: str, label: Label) -> tuple[float, str, list[str]] | None:
    """Number + unit, undoing OCR confusions seen on scale bar fonts, checked against the glyphs."""
    m = _match(text)
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
            if shape == "u" and (letter := first_letter(label)) != BOWL:  # an 'nm' whose arch was lost reads 'um'
                why.append(f"the unit's first letter looks like {letter or 'neither u nor n'}, OCR text {text!r}")
        elif shape == "p" and raw == "pm":
            unit = "pm"
        elif shape is None and raw in ("um", "µm"):  # Tesseract does not read a p as u or µ
            why.append("glyph shape unclear, OCR says µ")
        else:
            why.append(f"glyph shape {shape!r} disagrees with OCR {raw!r}")
            unit = "pm" if raw == "pm" else "µm"
    if unit == "nm" and _hangs_before_last(label):
        why.append(f"a glyph hangs below the baseline before the last, but OCR text {text!r}")
    if re.fullmatch(r"[1-9][0-9]{0,2}\.[0-9]{3}", num):  # '1,000 nm': a thousand, or one?
        why.append(f"a separator before three digits in {text!r}")
    if num.count(".") != label.n_dots or (num[0] == "0" and num[1:2] != "."):
        why.append(f"{label.n_dots} dots on the baseline but OCR text {text!r}")
    lead = value / 10 ** np.floor(np.log10(value))
    if any(abs(lead - n) < 1e-6 for n in _ALSO):
        why.append(f"{_UNCOMMON} {value:g}")
    elif not any(abs(lead - n) < 1e-6 for n in _NICE):
        why.append(f"value {value:g} is not a 1-2-5 number")
    if unit in _RARE_UNITS:
        why.append(f"{_UNCOMMON} {value:g} {unit}")
    chars, (lo, hi) = len(num.replace(".", "")) + (1 if unit == "Å" else 2), label.n_glyphs
    if not lo - (unit == "Å") <= chars <= hi + (label.lh < 10):  # Å's ring may stand apart
        why.append(f"{lo}-{hi} glyphs but OCR text {text!r}")  # a digit lost or invented
    return value, unit, why


def _hangs_before_last(label: Label) -> bool:
    """Whether a glyph hangs below the label's baseline with no more than one glyph's width
    of ink after it (up to 1.5 glyph heights: an m, perhaps broken in two), as a µ (or p)
    before the m does and an n never: a bold italic '20µm' shrunk for a paper was read
    '20nm' at every OCR size, 1000x off, and every other check agreed.  Old-style digits
    hang too, but a number's digits have the unit after them.  Blurred, the µ and m run
    together: the last piece then hangs at its left, and is wider than one glyph."""
    lab, st, big, hang, base = glyph_pieces(label.ink, label.lh)
    if len(big) < 3 or not hang:
        return False
    last = max(hang, key=lambda i: st[i, 0])
    if last == max(big, key=lambda i: st[i, 0] + st[i, 2]):  # the unit's piece hangs itself
        ys, xs = np.nonzero(lab == last)
        below = xs[ys >= base]
        return bool(st[last, 2] >= 1.2 * label.lh and below.size and below.mean() < st[last, 0] + 0.45 * st[last, 2])
    after = [i for i in big if st[i, 0] >= st[last, 0] + st[last, 2] / 2 and i != last]
    return bool(after) and max(st[i, 0] + st[i, 2] for i in after) - (st[last, 0] + st[last, 2]) <= 1.5 * label.lh


def _micro_or_pico(label: Label) -> str | None:
    """'µ', 'p', or 'u' (no descender) from the glyph hanging below the baseline; None if unclear.

    A p's bowl is closed and its top joins the stem; a µ is an open u-shape with a solid
    stem below.  On rendered labels in 25 fonts (serif, sans, mono, bold, italic;
    6-60 px) this never called a p 'µ'.
    """
    shape = _shape_below(label, label.ink)
    if shape == "µ" and any(_shape_below(label, label.soft > t) != "µ" for t in (0.35, 0.65)):
        return None  # 'µ' must hold at other ink thresholds too: a p taken for µ is a 10^6 error
    return shape


def _shape_below(label: Label, ink: np.ndarray) -> str | None:
    """_micro_or_pico's reading of the glyphs in ``ink`` (one threshold of the label)."""
    lab, st, big, desc, base = glyph_pieces(ink, label.lh)
    if len(big) < 2:
        return None
    n = len(st)
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


_DESCENDER_MICRO = ("pm", "ym", "yum", "pum", "yµm")  # µ read as a letter that hangs below the line
_SHAPE_OPEN = re.compile(rf"^glyph shape (None|'u') disagrees with OCR '({'|'.join(_DESCENDER_MICRO)})'$")
MIN_FIELD_NM = 1.0  # no micrograph is narrower than a few atoms (Pt's lattice spacing is 0.23 nm)


def micro_by_field(reading: tuple[str, float, str, list[str]], length: float, side: int
                   ) -> tuple[str, float, str, list[str]]:
    """A µ that Tesseract read as a letter with a descender ('5 pm', '10 ym') and whose
    glyph shape cannot tell from a p, settled by the frame's width in picometres.

    Why: on labels shrunk for a paper (glyphs 6-11 px) the µ's tail is a pixel or two,
    too little for the shape check, and Tesseract spells it 'p' or 'y'; the frame is
    flagged though a person reads it at once.  p and µ differ by 10^6: read as
    picometres, a frame of ``side`` px with the bar's ``length`` would show less than
    ``MIN_FIELD_NM`` (1 nm, a few atoms) from edge to edge, which no micrograph does, so
    the unit can only be µm.  A true 'nm' is hardly ever read so: none of the 1149
    number+unit words Tesseract read on the 319 frames with an nm label, in every scale
    set here (the corpus, the real frames and their shrinks, the held-out figures, the
    font sweep), where 553 words of µm labels were; 'nm' reads 'am', 'wm' or 'gm', and
    those stay flagged.  An earlier font sweep once read a '50 nm' as 'sym': its glyph
    count and spelling doubts stay, for only the shape's doubt is lifted, and only when
    the shape saw no p (None or no tail)."""
    text, value, unit, why = reading
    doubt = [w for w in why if _SHAPE_OPEN.match(w)]
    if len(doubt) != 1 or value * NM["pm"] / length * side >= MIN_FIELD_NM:
        return reading
    return text, value, "µm", [w for w in why if w not in doubt]


def unit_family(unit: str) -> str:
    """A checked reading's unit as ``value_unit`` spells it: µm, um and pm (and an
    unsure '?m') are one family there, so a word and a reading are compared alike."""
    return "µm" if unit in ("um", "μm", "pm", "?m") else unit


def value_unit(text: str) -> tuple[float, str] | None:
    """A number + unit word as a text finder saw it, without the glyph checks: what a
    second reading must agree with.  µm, um and pm are one family here (Tesseract's
    spelling of µ varies); the µ's shape decides between them in the checked reading."""
    m = _match(text)
    if not m:
        return None
    num, raw = m.group(1).translate(_DIGITS).replace(",", "."), m.group(2).replace("rn", "m")
    unit = _UNIT.get(raw)
    if unit is None or num.count(".") > 1 or not float(num) > 0:
        return None
    return float(num), ("µm" if unit == "pm" else unit)
