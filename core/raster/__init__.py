"""Rasters: GDAL reading with band choice and stretch, geotransforms, the crop grid."""
