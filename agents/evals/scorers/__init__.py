"""Scorers: small pure functions, one module each, that judge one item and say why."""
