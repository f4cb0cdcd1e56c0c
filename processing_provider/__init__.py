"""The AI Segmentation Processing provider: encode, segment a prompt layer, segment everything."""
