"""Run the same commands with the package at an older git revision and with this tree's, and compare what they write.

    python benchmarks/before_after.py --base REV [--cases STS_001 STS_002]

For a change that must not change behaviour (a refactoring): ``lesiondetect demo --ct``, ``demo --ms --model
ms-flair-lesions``, ``detect`` on real sarcoma CTs of ``../shared/data`` and ``evaluate`` of those detections
against the datalist run once per version, each in a fresh process with only that version's package on the path.
Every file written is compared byte for byte; a file whose bytes differ is then compared by content (a NRRD's
voxels and header fields, without the comment holding pynrrd's time of writing; a text file's lines), and each
difference is printed. The exit status is 1 when anything differs.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from compare_versions import extract_base

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED_DATA = REPOSITORY.parent / "shared" / "data"
DATALIST = SHARED_DATA / "ct-soft-tissue-sarcoma.json"


def commands(cases: list[str]) -> list[list[str]]:
    """The runs, as ``lesiondetect`` arguments; outputs go under the current folder."""
    quiet = ["--progress", "none", "--quiet"]
    runs = [["demo", "--ct", "-o", "demo-ct", *quiet], ["demo", "--ms", "--model", "ms-flair-lesions", "-o", "demo-ms",
                                                       *quiet]]
    runs += [["detect", str(SHARED_DATA / "ct-soft-tissue-sarcoma" / case / "image.nii.gz"), "-o", f"pred/{case}",
              "--model", "ct-tumours", *quiet] for case in cases]
    runs.append(["evaluate", "--pred", "pred", "--ref", str(DATALIST), "--rule", "ct-tumour", "--allow-missing",
                 "-o", "evaluation", "--no-plot"])
    return runs


def run_version(package_root: Path, folder: Path, cases: list[str]) -> None:
    """Every command with ``package_root``'s LesionDetectLib, writing under ``folder``."""
    folder.mkdir(parents=True)
    environment = {**os.environ, "PYTHONPATH": str(package_root), "OMP_NUM_THREADS": "2"}
    for arguments in commands(cases):
        subprocess.run([sys.executable, "-m", "LesionDetectLib", *arguments], cwd=folder, env=environment,
                       check=True, stdout=subprocess.DEVNULL)


def content_differences(old: Path, new: Path) -> list[str]:
    """What differs between two files whose bytes differ: a NRRD's voxels and header fields (not its comments,
    which hold pynrrd's time of writing), a text file's lines."""
    if old.name.endswith(".nrrd"):
        import nrrd
        import numpy as np

        notes = [] if np.array_equal(nrrd.read(str(old))[0], nrrd.read(str(new))[0]) else ["voxels differ"]
        old_lines, new_lines = (nrrd_header_fields(path) for path in (old, new))
    else:
        notes, old_lines, new_lines = [], old.read_text().splitlines(), new.read_text().splitlines()
    notes += [f"line {n}: {a!r} -> {b!r}" for n, (a, b) in enumerate(zip(old_lines, new_lines), 1) if a != b]
    if len(old_lines) != len(new_lines):
        notes.append(f"{len(old_lines)} lines -> {len(new_lines)}")
    return notes


def nrrd_header_fields(path: Path) -> list[str]:
    """The header lines of a NRRD file that are not comments."""
    data = path.read_bytes()
    return [line for line in data[:data.index(b"\n\n")].decode().splitlines() if not line.startswith("#")]


def compare_folders(old: Path, new: Path) -> int:
    """Print each file's agreement; returns how many differ or are missing on one side."""
    old_files = {p.relative_to(old) for p in old.rglob("*") if p.is_file()}
    new_files = {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
    problems = 0
    for relative in sorted(old_files | new_files):
        if relative not in old_files or relative not in new_files:
            print(f"{relative}: only in the {'new' if relative in new_files else 'old'} outputs")
            problems += 1
        elif filecmp.cmp(old / relative, new / relative, shallow=False):
            print(f"{relative}: identical")
        elif notes := content_differences(old / relative, new / relative):
            problems += 1
            print(f"{relative}: differs")
            for note in notes[:20]:
                print(f"    {note}")
        else:
            print(f"{relative}: same voxels and header fields (only a comment differs)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision of the old code")
    parser.add_argument("--cases", nargs="+", default=["STS_001", "STS_002"], help="sarcoma cases of the datalist")
    args = parser.parse_args(argv)
    if not DATALIST.exists():
        sys.exit(f"{DATALIST} is missing: this comparison needs ../shared/data")
    with tempfile.TemporaryDirectory() as scratch:
        old_root = extract_base(args.base, Path(scratch) / "old-package")
        run_version(old_root, Path(scratch) / "old", args.cases)
        run_version(REPOSITORY, Path(scratch) / "new", args.cases)
        problems = compare_folders(Path(scratch) / "old", Path(scratch) / "new")
    print(f"{problems} file(s) differ" if problems else "every output identical")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
