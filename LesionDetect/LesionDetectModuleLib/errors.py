"""Problems the user can act on; the panel shows their message as it is."""


class DetectionError(RuntimeError):
    """Base class: the run did not start or did not give results; the scene was left as it was."""


class LibraryMissingError(DetectionError):
    """The extension was installed without its library or without ``PythonSlicer``."""


class MissingDependenciesError(DetectionError):
    """Python packages the detection needs are missing and were not installed."""


class ResultsError(DetectionError):
    """The detection's files are missing, damaged or disagree with each other."""


class DetectionFailedError(DetectionError):
    """The detection process reported an error or crashed."""


class ComparisonRefusedError(DetectionError):
    """The comparison refused the two scans (they do not align, or their lesions were found differently)."""


class DetectionCancelledError(DetectionError):
    """The run was cancelled."""
