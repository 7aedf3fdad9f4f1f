"""A model's life in the service: which one serves, retraining, promotion, reprocessing.

    live.load_live_model: the LIVE pointer's model, prepared once per process
    schedule: retraining at a quiet hour when annotations changed
    promotion.train_and_promote: a new model goes live only if it measures better
    proposals: predicted masks written where people can correct them
    reprocess: stored images measured again with one model
"""

from .live import live_model_name, load_live_model, prepare_named

__all__ = ["live_model_name", "load_live_model", "prepare_named"]
