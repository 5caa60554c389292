"""The study layer: Ray Tune + Optuna around :mod:`netinv` (launch, trainable, results)."""
