"""Segmentation: which pixels are particle, at the scale the particles need.

    contrast.is_bright_field: HAADF (bright particles) or bright-field (dark ones)
    blobs.find_blobs / size.decide_segment_scale: how big the particles are, so the frame is
        resampled to the size the network saw in training
    coarse.merge_coarse: particles far larger than that scale, outlined by a coarser pass
    fine.add_fine: particles far smaller than that scale, found by a finer pass
    engines.segment(image, engine, model): the U-Net (through pipeline.runtime) or the
        classical top-hat engine (classical.segment_classical)
"""

from .classical import segment_classical
from .contrast import is_bright_field
from .engines import probabilities, segment

__all__ = ["is_bright_field", "probabilities", "segment", "segment_classical"]
