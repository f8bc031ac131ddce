"""Scoring: metrics and decision thresholds, pure functions of numpy arrays."""
