"""Expanding what the user names on the command line into cases: files, folders, DICOM series, list files."""

from __future__ import annotations

from pathlib import Path

from .io import IMAGE_SUFFIXES, dicom_series

LIST_SUFFIXES = (".txt", ".list")


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def expand_inputs(names: list[str]) -> list[Path]:
    """Each name is an image file, a DICOM series folder, a folder of image files, or a list file of paths.

    Unknown or missing paths are kept, so that each fails with its own clear error later.
    """
    cases: list[Path] = []
    for name in names:
        path = Path(name).expanduser()
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            lines = [line.strip() for line in path.read_text().splitlines()]
            cases += expand_inputs([line for line in lines if line and not line.startswith("#")])
        elif path.is_dir() and not dicom_series(path):
            images = sorted(p for p in path.iterdir() if _is_image_file(p))
            cases += images or [path]
        else:
            cases.append(path)
    return cases


def shard(cases: list[Path], rank: int, world_size: int) -> list[Path]:
    """This rank's share of the cases (round robin), for runs under torchrun."""
    return cases[rank::world_size]
