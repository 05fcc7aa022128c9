"""The demonstration: a synthetic gastric study, the bundled demo checkpoints, and their recipe."""
