"""Expanding what the user names on the command line into cases: files, folders, DICOM series, list files."""

from __future__ import annotations

from pathlib import Path

from .errors import InputImageError
from .io import IMAGE_SUFFIXES, dicom_series

LIST_SUFFIXES = (".txt", ".list")


def _is_image_file(path: Path) -> bool:
    """An image file by its name; hidden files (such as our own temporary outputs) are not inputs."""
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def _list_file_lines(path: Path) -> list[str]:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise InputImageError(f"{path}: not a readable list of inputs ({getattr(error, 'strerror', None) or error})") from None
    names = [line for line in lines if line and not line.startswith("#")]
    if not names:
        raise InputImageError(f"{path}: the list of inputs is empty")
    return names


def expand_inputs(names: list[str]) -> list[Path]:
    """Each name is an image file, a DICOM series folder, a folder of image files, or a list file of paths.

    Unknown or missing paths are kept, so that each fails with its own clear error later.
    """
    return _expand(names, frozenset())


def _expand(names: list[str], lists: frozenset[Path]) -> list[Path]:
    """`expand_inputs`, with the list files already being read (a list naming itself is an error, not a loop)."""
    cases: list[Path] = []
    for name in names:
        path = Path(name).expanduser()
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            if path.resolve() in lists:
                raise InputImageError(f"{path}: list file includes itself")
            cases += _expand(_list_file_lines(path), lists | {path.resolve()})
        elif path.is_dir() and not dicom_series(path):
            images = sorted(p for p in path.iterdir() if _is_image_file(p))
            cases += images or [path]
        else:
            cases.append(path)
    return cases


def shard(cases: list[Path], rank: int, world_size: int) -> list[Path]:
    """This rank's share of the cases (round robin), for runs under torchrun."""
    return cases[rank::world_size]
