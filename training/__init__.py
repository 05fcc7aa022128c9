"""What every trainer shares: the training-loop scaffold, resumable state, metrics, ROC figures, stain
augmentation and annotated-slide discovery. Nothing here is needed to serve a model."""
