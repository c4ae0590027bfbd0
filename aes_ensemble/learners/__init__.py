"""Base learners: one interface, registered by the ``kind`` of their config."""

from aes_ensemble.learners.base import Learner, LearnerConfig, Prediction, learner_class, register

__all__ = ["Learner", "LearnerConfig", "Prediction", "learner_class", "register"]
