"""One line naming the versions a CI leg tests against: QGIS, Qt, Python, numpy, GDAL, onnxruntime."""

import platform

import numpy
import onnxruntime
from osgeo import gdal
from qgis.core import Qgis
from qgis.PyQt.QtCore import QT_VERSION_STR

print(f"QGIS {Qgis.QGIS_VERSION}, Qt {QT_VERSION_STR}, Python {platform.python_version()}, numpy {numpy.__version__}, "
      f"GDAL {gdal.__version__}, onnxruntime {onnxruntime.__version__}")
