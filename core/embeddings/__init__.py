"""SAM embeddings as features: find similar objects, export embeddings as rasters."""
