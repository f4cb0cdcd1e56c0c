"""Model files: the catalogue, downloads, installs, discovery and the user's own models."""
