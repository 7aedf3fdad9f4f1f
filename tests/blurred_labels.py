"""Figures blurred after their bar was drawn: a label whose strokes are thinner than its
bar fades more than the bar does, and a 1-2 px bar under a bold label fades more than
the label.  Written before the reader was measured on it (session 29), never tuned on.

Why: the reader cut a label's blobs against the bar's grey.  A real TEM figure blurred
by a pixel lost the '1' of its thin white '100 nm' over a 4 px bar, and a real Zeiss
'20 nm' over a 1-2 px H-bar, blurred, had its label saturate into fat blobs; neither
was read.  These frames draw both cases with PIL on crops of real HAADF frames
(heldout_figures.texture), in fonts and sizes the held-out figures do not use (light
and regular sans and serif faces; FreeSans, DejaVu ExtraLight and Condensed, Liberation
Sans Narrow), white or black, over or under the bar, drawn at 2-3x and shrunk, then
blurred by a Gaussian of 0.7-1.3 px, noise added, JPEG q70-90.  Truth nm_per_px =
value / bar length after shrinking.
"""
from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.heldout_figures import UNIT_NM, canvas

THIN_FONTS = ("/usr/share/fonts/truetype/freefont/FreeSans.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans-ExtraLight.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
              "/usr/share/fonts/truetype/freefont/FreeSerif.ttf",
              "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf")
BOLD_FONTS = ("/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
              "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf")
LABELS = ((10, "nm"), (20, "nm"), (50, "nm"), (100, "nm"), (200, "nm"), (500, "nm"), (1, "µm"),
          (2, "µm"), (5, "µm"), (2, "nm"), (5, "nm"))


def frame(index: int) -> tuple[np.ndarray, dict]:
    """Blurred figure ``index``: (RGB uint8 image, truth with nm_per_px, bar_px, text).
    Even indices: a thin label over a thick bar; odd: a bold label over a thin H-bar."""
    rng = np.random.default_rng(zlib.crc32(f"blurred{index}".encode()))
    thin_label = index % 2 == 0
    (k, out_h, out_w), tex, white = canvas(rng, (2.0, 3.0), (400, 700), 1.4)
    H, W = tex.shape
    ink = 255 if white else 0
    tex = rng.uniform(0.55, 0.8) * tex + (0 if white else rng.uniform(40, 90))
    value, unit = LABELS[int(rng.integers(len(LABELS)))]
    text = f"{value:g} {unit}"
    fonts = THIN_FONTS if thin_label else BOLD_FONTS
    font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], int(out_h * rng.uniform(0.03, 0.045) * k))
    bar_len = rng.uniform(0.12, 0.3) * out_w * k
    thick = (rng.uniform(4, 7) if thin_label else rng.uniform(1.2, 2.2)) * k
    im = Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    x0 = rng.uniform(0.04, 0.5) * W
    y0 = rng.uniform(0.85, 0.93) * H
    d.rectangle([x0, y0, x0 + bar_len - 1, y0 + thick - 1], fill=ink)
    if not thin_label:  # an H-bar: ticks as thick as the label's strokes, up and down
        tick, th = 0.9 * font.size, max(1.0, 1.6 * k)
        for tx in (x0, x0 + bar_len - th):
            d.rectangle([tx, y0 + thick / 2 - tick / 2, tx + th - 1, y0 + thick / 2 + tick / 2], fill=ink)
    tb = d.textbbox((0, 0), text, font=font)
    tw, th_ = tb[2] - tb[0], tb[3] - tb[1]
    above = rng.random() < 0.7
    gap = rng.uniform(0.3, 0.8) * th_ + (0.45 * font.size if not thin_label else 0)
    ty = y0 - gap - th_ - tb[1] if above else y0 + thick + gap - tb[1]
    d.text((x0 + bar_len / 2 - tw / 2 - tb[0], ty), text, font=font, fill=ink)
    img = np.asarray(im.convert("RGB"), dtype=np.float32)
    img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.7, 1.3)))
    img = img + rng.normal(0, rng.uniform(2, 6), img.shape[:2])[..., None]
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(70, 91)))
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    bar_px = bar_len * out_w / W
    return rgb, {"nm_per_px": value * UNIT_NM[unit] / bar_px, "bar_px": bar_px, "text": text,
                 "thin_label": thin_label}
