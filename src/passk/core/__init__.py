"""Pure tensor numerics: advantages, per-token losses (policy_losses, kl, divergences,
entropy), aggregation, metrics, and the one Registry. No config, no I/O."""
