"""Base learners: one interface, registered by the ``kind`` of their config."""

from aes_ensemble.learners.base import Learner, LearnerConfig
from aes_ensemble.learners.registry import learner_class, register
from aes_ensemble.store import Prediction

__all__ = ["Learner", "LearnerConfig", "Prediction", "learner_class", "register"]
