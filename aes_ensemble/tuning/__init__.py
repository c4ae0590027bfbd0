"""``aes-ensemble tune``: Optuna search of a learner's parameters on the workspace folds.

``space`` declares what may be searched (a config's ``search:`` section, or the defaults of the
shipped kinds); ``trials`` fits one candidate over the folds in memory; ``study`` runs the
Optuna study on shared storage and writes ``configs/NAME_tuned.yaml``. This module imports
nothing so that ``learners.base`` can import ``space`` without a cycle.
"""
