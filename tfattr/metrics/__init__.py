"""Evaluation metrics: the bench's oracle attribute classifier and image-quality scores."""
