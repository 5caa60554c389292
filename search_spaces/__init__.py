"""Built-in search spaces: one define-by-run function ``space(trial) -> dict`` per file.

``python -m study.launch --space NAME`` takes the file's name (``default``, ``quick``,
``paper``) or the path of a user's own ``.py`` file of the same shape. Each file only calls
``trial.suggest_*`` with Config flat keys (``"section/field"``) and returns a dict of constants,
also Config flat keys; it imports neither torch nor netinv, so it is fast and picklable.
"""
