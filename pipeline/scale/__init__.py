"""Scale bars: reading a burned-in bar and its label (nm per pixel), and drawing them.

    reader.find_scale_bar(image) -> the bar, its label, nm per px, or a reason
    bar_find: bar candidates; draw and corpus: the rendered frames the reader is tested on
"""

from .reader import find_scale_bar

__all__ = ["find_scale_bar"]
