"""Training sparse encoders (SPLADE, UHD, inference-free SPLADE) with contrastive, FLOPS and distillation losses."""

from lsr.retrieval.training.data import (
    TrainingData,
    load_training_data,
    mine_hard_negatives,
    negatives_from_run,
    score_spread_ratio,
    teacher_scale,
)
from lsr.retrieval.training.pseudo_queries import PseudoQuerySettings, learn_from_other_documents, pseudo_queries
from lsr.retrieval.training.trainer import TrainingConfig, train

__all__ = [
    "PseudoQuerySettings",
    "TrainingConfig",
    "TrainingData",
    "learn_from_other_documents",
    "load_training_data",
    "mine_hard_negatives",
    "negatives_from_run",
    "pseudo_queries",
    "score_spread_ratio",
    "teacher_scale",
    "train",
]
