"""ESCNN training and evaluation: what `pathstream train|evaluate escnn` need and `serve` does not."""
