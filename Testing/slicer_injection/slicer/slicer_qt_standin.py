# The qMRML and qSlicer Qt classes that Slicer puts in the `slicer` namespace, from the test stand-in
# (Testing/slicer_app_standin.py); slicer-core's `slicer` package imports this file because it lies in a `slicer`
# folder on sys.path. Every public name here becomes an attribute of `slicer`.
from slicer_app_standin import (  # noqa: F401
    qMRMLNodeComboBox,
    qMRMLWidget,
    qSlicerScriptedLoadableModule,
    qSlicerScriptedLoadableModuleWidget,
)
from slicer_app_standin import qt as _qt

qMRMLSliderWidget, qMRMLSpinBox, qMRMLRangeWidget = _qt.qMRMLSliderWidget, _qt.qMRMLSpinBox, _qt.qMRMLRangeWidget
