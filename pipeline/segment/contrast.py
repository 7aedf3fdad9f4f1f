"""HAADF or bright-field: which contrast a frame has, before anything is measured.

The microscope exports a bright-field (BF) twin beside each HAADF frame. In BF
the particles are dark on a bright background; the HAADF method run on it
measures support texture, and measuring both frames would count every particle
twice. So BF frames are recognised and left out, never measured.

The file's own word comes first (the detector or signal name that Velox, TIA,
DigitalMicrograph and FEI write). Without it, the grey-level histogram decides:
a HAADF frame is a dark background with a bright tail (positive skew, the
median low in the range), a BF frame a bright background with a dark tail.
Measured on every real frame at hand: the 13 HAADF catalysts have skew
0.41 to 1.73 with the median at 1-35 % of the range, the 45 Pt/alumina patches
skew 1.9 to 4.1; the two BF frames skew -3.15 and -0.77 with the median at
82 % and 62 %. The rule asks for both a negative skew and a high median, so an
evenly lit HAADF frame (skew near 0) is never skipped by it.

A BF frame on a grainy carbon film has a nearly symmetric histogram (the grain
outweighs the few particles), so a second rule looks at the compact details
instead: in BF the dark ones (particles) stand out more than the bright ones
(grain), in HAADF the bright ones (particles) do. Measured as the 99.9th
percentile of the black over the white top-hat (31 px disk) of the frame shrunk
to at most 1024 px and smoothed (4 px, which averages the grain out): the two real
BF frames 2.1 and 1.7, with grain added until their skew is near 0 (grain 1.8x
the frame's own spread) 1.27 and 1.32; the 13 HAADF catalysts and the 45
Pt/alumina patches at most 0.84, with that grain at most 1.04. It asks for 1.15
and the median above 40 % of the range (HAADF catalysts: 35 % at most).
"""

from __future__ import annotations

import re

import cv2
import numpy as np

_BF_NAME = re.compile(r"(?<![a-z])(bf|bright[ -]?field)(?![a-z])", re.I)
_DF_NAME = re.compile(r"haadf|adf|dark[ -]?field|(?<![a-z])df\d?(?![a-z])", re.I)
MAX_SKEW, MIN_MEDIAN_POSITION = -0.3, 0.5
MIN_DARK_DETAIL, MIN_DETAIL_MEDIAN = 1.15, 0.4


def detector_says(meta: dict) -> str | None:
    """'bf' or 'df' from a detector or signal name in the file's metadata, else None."""
    names = " ".join(str(meta.get(key, "")) for key in ("detector", "signal_title", "signal"))
    if _DF_NAME.search(names):
        return "df"
    if _BF_NAME.search(names):
        return "bf"
    return None


def histogram_features(data: np.ndarray, exclude: np.ndarray | None = None) -> tuple[float, float]:
    """Skewness of the grey levels and where their median lies in the 0.5-99.5 % range."""
    step = max(1, int(np.sqrt(data.size / 1e6)))
    values = np.asarray(data, np.float32)[::step, ::step]
    if exclude is not None:
        values = values[~exclude[::step, ::step]]
    values = values[np.isfinite(values)].ravel()
    if values.size < 16:
        return 0.0, 0.0
    lo, med, hi = np.percentile(values, (0.5, 50, 99.5))
    if hi <= lo:
        return 0.0, 0.0
    return skewness(np.clip(values, lo, hi)), float((med - lo) / (hi - lo))


def skewness(values: np.ndarray) -> float:
    """The sample skewness (scipy.stats.skew's biased default, which the thresholds above
    were measured with). Written out because this check runs on every frame `psdwatch
    process` reads, and importing scipy.stats for one moment cost a one-shot process
    0.5-1 s of its 3-6 s."""
    d = np.asarray(values, np.float64) - float(np.mean(values))
    m2 = float(np.mean(d * d))
    return float(np.mean(d * d * d) / m2 ** 1.5) if m2 > 0 else 0.0


def dark_detail_balance(data: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """Black over white top-hat (99.9th percentiles) of the smoothed frame: above 1 when
    its compact dark details (BF particles) outweigh its compact bright ones."""
    image = np.asarray(data, np.float32)
    keep = np.isfinite(image) if exclude is None else np.isfinite(image) & ~exclude
    if keep.sum() < 64:
        return 0.0
    image = np.where(keep, image, np.float32(np.median(image[keep])))
    factor = min(1.0, 1024 / max(image.shape))
    if factor < 1:
        size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        keep = cv2.resize(keep.view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    image = cv2.GaussianBlur(image, (0, 0), 4.0)   # the grain averaged out, particles stay
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (31, 31))
    white = np.percentile(cv2.morphologyEx(image, cv2.MORPH_TOPHAT, disk)[keep], 99.9)
    black = np.percentile(cv2.morphologyEx(image, cv2.MORPH_BLACKHAT, disk)[keep], 99.9)
    return float(black / white) if white > 0 else 0.0


def is_bright_field(data: np.ndarray, meta: dict, exclude: np.ndarray | None = None) -> tuple[bool, str]:
    """(True, why) for a bright-field frame; the reason is the one-line text a person reads."""
    said = detector_says(meta)
    if said is not None:
        return said == "bf", "the file names a bright-field detector" if said == "bf" else ""
    skew, median_position = histogram_features(data, exclude)
    if skew < MAX_SKEW and median_position > MIN_MEDIAN_POSITION:
        return True, (f"dark particles on a bright background (grey-level skew {skew:.2f}, "
                      f"median at {median_position:.0%} of the range)")
    if median_position > MIN_DETAIL_MEDIAN:
        balance = dark_detail_balance(data, exclude)
        if balance > MIN_DARK_DETAIL:
            return True, (f"dark particles on a bright grainy background (dark details {balance:.2f}x "
                          f"the bright ones, median at {median_position:.0%} of the range)")
    return False, ""
