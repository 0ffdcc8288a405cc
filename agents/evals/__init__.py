"""Evaluation: datasets, experiments and scorers.

Scorers are pure functions (no Django) in ``agents.evals.scorers``, one module each.
"""
