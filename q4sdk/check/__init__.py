"""Checking a quantized model: C against the oracle, accuracy, per-layer reports, data files."""
