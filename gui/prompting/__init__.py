"""The click session: prompts, results, the decode worker and step-wise segmentation."""
