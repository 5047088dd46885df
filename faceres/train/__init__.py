"""Training: the expression classifier loop, its augmentation, and publishing into the registry."""
