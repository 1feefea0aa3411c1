"""Pure tensor numerics: advantages, losses, aggregation, metrics. No config, no I/O."""
