"""Synthetic slides with ground truth: gastric lymph-node dissections and bone-marrow smears."""
