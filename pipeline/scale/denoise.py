"""The frame a scale bar's label lines are looked for in: denoised where noise lies over them.

Why: a figure resampled for a paper, or a noisy print, carries noise over its label as
much as over the micrograph (sigma 8-30 grey levels on 8-15 px glyphs).  The label
finder cuts glyphs at half contrast, so noise breaks their strokes and adds specks
counted as decimal points; Tesseract reads the rest as 'nr' for 'nm'.  Non-local means
(OpenCV's fastNlMeansDenoising, strength set to the noise measured) smooths the noise
and keeps the strokes' edges.  Only the label's glyphs are looked at on the denoised
frame: the bar is found and measured on the frame itself.

Only for frames up to ``MAX_SIDE`` px on their longer side (figures; 0.1-0.3 s on two
cores): a microscope's own 2048² export draws its label on a clean band or over the
image without noise on the label, and non-local means would take a second there.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..robust import robust_sigma

MAX_SIDE = 1024
MIN_SIGMA = 4.0  # grey levels of 255: below it the label's glyphs cut cleanly


def noise_sigma(img: np.ndarray) -> float:
    """Pixel noise of a 0-1 frame, in grey levels of 255: the robust spread (MAD) of the
    differences between horizontal neighbours, which texture (smooth over a few px)
    hardly moves and pixel noise does."""
    return robust_sigma(np.diff(img[::2], axis=1)) / np.sqrt(2) * 255


def for_labels(img: np.ndarray) -> np.ndarray:
    """``img`` (0-1) denoised for the label finder when it is a noisy figure; else ``img`` itself."""
    if max(img.shape) > MAX_SIDE or (sigma := noise_sigma(img)) < MIN_SIGMA:
        return img
    u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.fastNlMeansDenoising(u8, None, h=sigma, templateWindowSize=5, searchWindowSize=15
                                    ).astype(np.float32) / 255
