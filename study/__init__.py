"""The study layer: Ray Tune + Optuna around :mod:`netinv`.

``launch`` (the CLI) reads its ``options``, checks the cluster's ``resources``, builds the
Optuna ``search``er and the Tuner; each trial runs ``trainable``, which writes ``results``
(Parquet) into the folder ``layout`` describes through ``storage``; ``analyze`` reports,
with ``tables`` (computed), ``checks`` (consistency), ``journal`` (Optuna), ``report`` (text)
and ``plots``.
``cluster`` checks a cluster launcher config; ``ray_compat`` holds every use of Ray's private
names.
"""
