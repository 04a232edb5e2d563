"""The LesionDetect Slicer module's parts, one job per file (the module file `LesionDetect.py` only wires them):

- `errors`: the problems the panel shows to the user;
- `library`: finds LesionDetectLib and the environment of the detection process;
- `protocol`: the ``--progress jsonl`` lines, the cancelled exit code and the error prefix (shared with the library);
- `runner`: `ProcessRunner` (the seam) and `SubprocessRunner`, which runs the detection beside Slicer;
- `parameters`: `DetectionOptions` (one object for the command line) and the module's parameter node;
- `dependencies`: which Python packages the detection needs, and their installation;
- `results`: the detection's files → segmentation, point list and table nodes next to the input;
- `review`: the reader's review stored in those nodes (status, comment, origin), review order, export;
- `addedLesion`: a lesion the reader added at a point, merged into those nodes;
- `measurements`: each lesion measured again from its segment after an edit;
- `comparison`: a follow-up comparison's files → the current results with their change, the prior's transform;
- `logic`: `LesionDetectLogic`, the scriptable entry point;
- `modelChoice`, `resultsView`, `reviewPanel`, `comparePanel`: the panel's model list, results table, review
  controls and *Compare with prior* controls;
- `logicTests`, `compareTests`, `testRunners`, `intensityModel`: the logic tests that run in pytest and in
  Slicer's self-test alike, the runner they use and the stand-in model it runs.

Importing the package makes LesionDetectLib importable: an installed extension has it beside the module, a source
checkout one folder above the module folder.
"""

from .library import addSourceTreeToPath

addSourceTreeToPath()
