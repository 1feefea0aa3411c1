"""Sweeps: arms x seeds of ``passk train`` runs, one shared start evaluation, comparisons.

A sweep file (:mod:`passk.sweep.spec`) names a base config, arms, seeds and one
evaluation; :mod:`passk.sweep.plan` resolves every run's config, :mod:`passk.sweep.runner`
runs the ``passk train`` subprocesses (skipping finished runs, resuming cut ones),
:mod:`passk.sweep.summary` reads the results back and compares arms, and
:mod:`passk.sweep.report` writes the tables. ``passk sweep`` is :mod:`passk.sweep.cli`.
"""
