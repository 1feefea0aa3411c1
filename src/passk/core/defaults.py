"""Defaults stated once for the whole library.

>>> NUM_RESAMPLES
1000
"""

__all__ = ["NUM_RESAMPLES"]

#: Bootstrap resamples of every confidence interval (pass@k tables, per-problem summaries,
#: the verl and TRL validation metrics, evaluation reports) unless a caller asks otherwise.
NUM_RESAMPLES = 1000
