"""Detector training and evaluation: what `pathstream train|evaluate detector` need and `serve` does not."""
