"""The `lesiondetect` command run in a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys


def lesiondetect(*args, env_models=None, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if env_models is not None:
        env["LESIONDETECT_MODELS"] = str(env_models)
    return subprocess.run([sys.executable, "-m", "LesionDetectLib", *map(str, args)], capture_output=True, encoding="utf-8",
                          text=True, env=env, timeout=timeout)
