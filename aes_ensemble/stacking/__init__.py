"""Stacking: meta-learners over the prediction store, nested grouped CV, cross-fitted thresholds.

A notebook user builds :class:`StackData` from prediction sets and essays with
:func:`build_stack_data`, then calls :func:`run_stack` (or :func:`nested_stack` with any
scikit-learn regressor); :func:`stack_workspace` and :func:`write_submission` do the same over a
workspace's files. :func:`build_stack_model` turns a run into a :class:`StackModel`, the saved
stack that scores new essays.
"""

from aes_ensemble.stacking.config import StackConfig
from aes_ensemble.stacking.inputs import StackData, build_stack_data, length_features
from aes_ensemble.stacking.meta import HillClimbing, MajorityVote, MeanBlend, NonNegativeLinear
from aes_ensemble.stacking.model import StackModel, build_stack_model, stack_model_dir
from aes_ensemble.stacking.nested import NestedResult, nested_stack
from aes_ensemble.stacking.run import StackRun, run_stack
from aes_ensemble.stacking.stack_workspace import stack_config, stack_workspace, write_submission

__all__ = [
    "HillClimbing",
    "MajorityVote",
    "MeanBlend",
    "NestedResult",
    "NonNegativeLinear",
    "StackConfig",
    "StackData",
    "StackModel",
    "StackRun",
    "build_stack_data",
    "build_stack_model",
    "length_features",
    "nested_stack",
    "run_stack",
    "stack_config",
    "stack_model_dir",
    "stack_workspace",
    "write_submission",
]
