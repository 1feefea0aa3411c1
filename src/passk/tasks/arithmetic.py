"""Procedural arithmetic tasks (mul1, add, chain)."""
