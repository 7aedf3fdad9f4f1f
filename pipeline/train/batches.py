"""Training crops: which image, which part of it, how it is distorted.

Particles are rare (a few percent of pixels, often less), so crops are drawn centred
on a particle more often than chance would, or the network learns "all background";
series are drawn before images, so each kind of image gets its share.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from .data import Example

def augmenter() -> A.Compose:
    """The study's augmentations, plus shot noise and intensity scaling for HAADF."""
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.Affine(scale=(0.6, 1.6), translate_percent=(-0.05, 0.05), rotate=(-30, 30),
                 border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.OneOf([A.ElasticTransform(alpha=20, sigma=5), A.GridDistortion(distort_limit=0.2),
                 A.OpticalDistortion(distort_limit=0.1)], p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.25, p=0.5),
        A.OneOf([A.Sharpen(alpha=(0.1, 0.3)), A.GaussianBlur(sigma_limit=(0.3, 1.2))], p=0.3),
        A.GaussNoise(std_range=(0.01, 0.08), p=0.4),
        A.MultiplicativeNoise(multiplier=(0.85, 1.15), p=0.3),
    ])


def sample_crop(example: Example, crop: int, rng: np.random.Generator,
                particle_fraction: float, input_mode: str = "plain") -> tuple[np.ndarray, np.ndarray]:
    """A crop, centred on a random particle with probability particle_fraction."""
    h, w = example.mask.shape
    image, mask = example.prepared(input_mode), example.mask
    if h < crop or w < crop:
        pad = ((0, max(0, crop - h)), (0, max(0, crop - w)))
        image, mask = np.pad(image, pad, mode="reflect"), np.pad(mask, pad)
        h, w = mask.shape
    if rng.random() < particle_fraction and mask.any():
        # A random particle, not a random particle pixel: by pixels the large
        # particles would win, and recall on the tiniest is what needs the practice.
        # (Padding is below and right of the image: the centres stand where they were.)
        cy, cx = example.centres[rng.integers(len(example.centres))]
        y = int(np.clip(cy - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, h - crop))
        x = int(np.clip(cx - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, w - crop))
    else:
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    return image[y:y + crop, x:x + crop], mask[y:y + crop, x:x + crop]


def pick_example(groups: list[list[Example]], rng: np.random.Generator) -> Example:
    """A series first, then an image in it: each kind of image gets the same share of
    the crops however many images it has. Drawn by image, 25 Pt/alumina patches and
    32 synthetic frames left the 6 real catalyst images a tenth of the crops, and
    starter-v2 found 1 of 246 particles on a catalyst image it had trained on."""
    group = groups[int(rng.integers(len(groups)))]
    return group[int(rng.integers(len(group)))]
