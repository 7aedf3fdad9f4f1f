"""Lay out the starter model's training annotations from ../shared/data.

    .venv/bin/python bench/training_data.py OUTDIR

OUTDIR gets the 45 Pt/alumina patches with their human masks (symbolic links:
the shared data is never copied) and the HAADF catalyst images of
catalysts-boxed with weak masks made inside their boxes (pipeline.weak_masks),
except the images in HELD_OUT, which stay unseen so that detection on them is
measured on images no model trained on. The bright-field images are left out
(psdwatch does not measure them). The fixed test set (models/test_set.json:
ptal_036-044) is taken out by the trainer itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from psdwatch.pipeline.io.image import load_image
from psdwatch.pipeline.train.weak_masks import mask_from_boxes, read_yolo_boxes

REPO = Path(__file__).resolve().parent.parent

DATA = REPO.parent / "shared" / "data"
HELD_OUT = ("Cu4", "Cu_silica2", "Pd_silica2", "PtW3")  # one or two of each metal, for detection
BRIGHT_FIELD = ("PtC1", "Pt_carbon1")


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for image in sorted((DATA / "pt-alumina-haadf").glob("ptal_[0-9][0-9][0-9].tif")):
        for src in (image, image.with_name(image.stem + "_mask.png")):
            link = outdir / src.name
            if not link.exists():
                link.symlink_to(src)
    boxed = DATA / "catalysts-boxed"
    for image in sorted((boxed / "images").glob("*.jpg")):
        if image.stem in HELD_OUT + BRIGHT_FIELD:
            continue
        data = load_image(image).data
        mask = mask_from_boxes(data, read_yolo_boxes(boxed / "labels" / f"{image.stem}.txt", data.shape))
        link = outdir / f"cat_{image.stem}.jpg"
        if not link.exists():
            link.symlink_to(image)
        cv2.imwrite(str(outdir / f"cat_{image.stem}_mask.png"), mask.astype(np.uint8) * 255)
        print(f"{image.stem}: {int(cv2.connectedComponents(mask.astype(np.uint8))[0]) - 1} weak particles")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
