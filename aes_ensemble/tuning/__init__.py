"""``aes-ensemble tune``: Optuna search of a learner's parameters on the workspace folds.

What may be searched is the learner's own (``learners.search_space``: a config's ``search:``
section, or the defaults of the shipped kinds); ``trials`` fits one candidate over the folds in
memory; ``study`` runs the Optuna study on shared storage and writes ``configs/NAME_tuned.yaml``.
"""
