"""Pure tensor numerics: advantage estimators (the ``advantages`` package), per-token losses
(the ``losses`` package; kl, divergences, entropy), aggregation, metrics, and the one
Registry. No config, no I/O."""
