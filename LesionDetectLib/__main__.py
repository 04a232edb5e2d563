"""``python -m LesionDetectLib`` (and ``PythonSlicer -m LesionDetectLib``) is the `lesiondetect` command."""

from .cli import run_command

if __name__ == "__main__":
    run_command()
