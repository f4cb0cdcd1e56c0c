"""Saved objects: the output GeoPackage layer and safe GeoPackage writes."""
