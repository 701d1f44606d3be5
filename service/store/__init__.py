"""Persistence: the engine and units of work, hps tables, Optuna's tables, and schema migrations.

All SQL lives in this package.
"""
