# The qMRML and qSlicer Qt classes that Slicer puts in the `slicer` namespace, from the test stand-ins
# (Testing/qt_standin.py, Testing/slicer_app_standin.py); slicer-core's `slicer` package imports this file because
# it lies in a `slicer` folder on sys.path. Every public name here becomes an attribute of `slicer`.
from qt_standin import qMRMLNodeComboBox, qMRMLWidget  # noqa: F401
from qt_standin import qt as _qt
from slicer_app_standin import qSlicerScriptedLoadableModule, qSlicerScriptedLoadableModuleWidget  # noqa: F401

qMRMLSliderWidget, qMRMLSpinBox, qMRMLRangeWidget = _qt.qMRMLSliderWidget, _qt.qMRMLSpinBox, _qt.qMRMLRangeWidget
