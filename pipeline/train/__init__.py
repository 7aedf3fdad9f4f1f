"""Training: annotated images in, a scored model card and its weights out.

    data.find_annotations / load_example: masks, YOLO or COCO boxes next to their images
    weak_masks: boxes turned into weak masks for training and kept for scoring
    scoring: IoU/PPV/NPV against masks and detection F1 against boxes, per series
    (pipeline.metrics holds the pixel counts both use)
    loop.run_training: the fit, the threshold, the test scores (imports torch; import it
        as `from psdwatch.pipeline.train import loop`, it is not loaded here)
"""

from .data import find_annotations, load_example
from .weak_masks import mask_from_boxes, read_coco_boxes, read_yolo_boxes

__all__ = ["find_annotations", "load_example", "mask_from_boxes", "read_coco_boxes",
           "read_yolo_boxes"]
