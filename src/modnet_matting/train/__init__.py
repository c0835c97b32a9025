"""Training: data and labels, augmentation, trimaps, losses, the supervised loop and SOC."""
