"""Training pieces kept apart from the command line: masked losses, augmentation, data, metrics."""
