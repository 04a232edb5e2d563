"""Follow-up: what is new, enlarging, stable, shrinking or resolved between a prior and a current scan.

>>> from LesionDetectLib.compare import compare
>>> comparison = compare("prior-results/", "current.nii.gz")   # results folders, scans or DetectionResults
>>> comparison.summary()["counts"]
>>> comparison.write("out/")
"""

from .changes import CLASSES, ChangeRules, LesionChange
from .comparison import Comparison
from .registration import QualityLimits, Registration, register
from .run import compare
from .timepoints import Timepoint, from_labels, read_results

__all__ = [
    "CLASSES", "ChangeRules", "Comparison", "LesionChange", "QualityLimits", "Registration", "Timepoint",
    "compare", "from_labels", "read_results", "register",
]
