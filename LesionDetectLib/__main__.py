"""``python -m LesionDetectLib`` (and ``PythonSlicer -m LesionDetectLib``) is the `lesiondetect` command."""

import sys

from .cli import main

sys.exit(main())
