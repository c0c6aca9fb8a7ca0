"""Deterministic sample data: the app database, landing files and FX rates."""
