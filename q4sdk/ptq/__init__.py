"""Post-training quantization: float graph + calibration data -> integer QModel."""
