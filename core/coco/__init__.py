"""Training data out: COCO datasets for fine-tuning SAM."""
