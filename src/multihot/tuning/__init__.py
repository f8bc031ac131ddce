"""Tuning a recipe on the data it will be trained on: k-fold cross-validation with multi-label
stratified folds (:mod:`multihot.tuning.cv`) and hyperparameter search with Optuna
(:mod:`multihot.tuning.search`, its space in :mod:`multihot.tuning.space`)."""
