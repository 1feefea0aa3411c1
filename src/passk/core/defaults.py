"""Defaults stated once for the whole library.

>>> NUM_RESAMPLES, EVAL_SAMPLES
(1000, 16)
"""

__all__ = ["EVAL_SAMPLES", "NUM_RESAMPLES"]

#: Bootstrap resamples of every confidence interval (pass@k tables, per-problem summaries,
#: the verl and TRL validation metrics, evaluation reports) unless a caller asks otherwise.
NUM_RESAMPLES = 1000

#: Samples per problem of an evaluation: ``passk eval --n``, ``EvalConfig.n`` and the
#: trainer's held-out ``eval.n`` (pass@k is reported for k = 1, 2, 4, ..., this).
EVAL_SAMPLES = 16
