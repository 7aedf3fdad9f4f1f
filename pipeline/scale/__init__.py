"""Scale bars: reading a burned-in bar and its label (nm per pixel), and drawing them.

    reader.find_scale_bar(image) -> the bar, its label, nm per px, or a reason
    bar_find: bar candidates; label: the label line by a bar; ocr: Tesseract;
    parse: label text -> value, unit and its checks; length: the bar's length;
    exclusion: what is annotation; draw and corpus: the rendered frames the reader is tested on
"""

from .reader import ScaleBar, find_scale_bar

__all__ = ["ScaleBar", "find_scale_bar"]
