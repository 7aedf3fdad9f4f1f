"""Reading: an image file in, pixels and the file's own calibration out.

    image.load_image(path) -> LoadedImage (grey pixels, Calibration or None, flags)
    calibration: which of a file's metadata gives nm per pixel, and when to trust none
    files.write_atomic(path, data): every file psdwatch writes, whole or not at all
"""

from .files import sweep_temporaries, write_atomic
from .calibration import Calibration
from .image import LoadedImage, UnreadableImage, file_sha256, load_image, preload_readers

__all__ = ["Calibration", "LoadedImage", "UnreadableImage", "file_sha256", "load_image", "preload_readers",
           "sweep_temporaries", "write_atomic"]
