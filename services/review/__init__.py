"""Review service: the pathologist review API (users and tokens, label and contour amendments, QuPath)."""
