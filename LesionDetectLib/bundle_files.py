"""Reading a bundle's two files, ``model.json`` and ``weights.pt``, from a folder or a ``.zip`` without trusting it.

A file is read only when it is a regular file inside the bundle (not a link leading out of it, a FIFO or a device)
and within a size limit; a zip member is refused by its declared size before any byte is decompressed, and a zip
with unsafe or duplicate entry names is refused whole.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
import zlib
from collections import Counter
from pathlib import Path

from .errors import ModelBundleError
from .model_spec import SPEC_FILE, WEIGHTS_FILE

MAX_SPEC_BYTES, MAX_WEIGHTS_BYTES = 2**20, 2**31  # 1 MiB of JSON, 2 GiB of weights


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bundle_files(path: Path) -> tuple[bytes, bytes]:
    """(model.json bytes, weights.pt bytes) from a folder or a zip, refusing unsafe files and zip entries."""
    if path.is_dir():
        return read_member(path, SPEC_FILE, MAX_SPEC_BYTES), read_member(path, WEIGHTS_FILE, MAX_WEIGHTS_BYTES)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                prefix = _zip_prefix(archive, path)
                return (read_zip_member(archive, prefix + SPEC_FILE, MAX_SPEC_BYTES, path),
                        read_zip_member(archive, prefix + WEIGHTS_FILE, MAX_WEIGHTS_BYTES, path))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as error:
            raise ModelBundleError(f"{path}: corrupt or unsupported zip ({error})") from None
    raise ModelBundleError(f"{path}: not a model bundle (a folder or .zip with {SPEC_FILE} and {WEIGHTS_FILE})")


def read_member(folder: Path, name: str, limit: int) -> bytes:
    """A regular file of the bundle folder, not a link leading out of it, at most ``limit`` bytes."""
    member = folder / name
    try:
        if not member.resolve().is_relative_to(folder.resolve()):  # RuntimeError: a loop of links
            raise ModelBundleError(f"{member}: a link to {member.resolve()}, outside the bundle; copy the file instead")
        info = member.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise ModelBundleError(f"{member}: not a regular file")
        if info.st_size > limit:
            raise ModelBundleError(f"{member}: {info.st_size} bytes, more than the {limit} bytes allowed")
        with member.open("rb") as stream:
            return stream.read(limit + 1)[:limit]
    except OSError as error:
        raise ModelBundleError(f"{folder}: not a model bundle ({error.strerror}: {name})") from None
    except RuntimeError:
        raise ModelBundleError(f"{folder}: not a model bundle ({name} is a loop of symbolic links)") from None


def read_zip_member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """A zip member, refused by its declared size before any byte is decompressed, and read with a bound."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelBundleError(f"{path}: zip lacks {name!r}") from None
    if info.file_size > limit:
        raise ModelBundleError(f"{path}: {name} would decompress to {info.file_size} bytes, more than {limit} allowed")
    with archive.open(info) as stream:
        return stream.read(limit + 1)[:limit]


def safe_zip_names(archive: zipfile.ZipFile, path: Path) -> list[str]:
    """The zip's entry names; absolute, drive-letter, backslash, '..' and duplicate entries are refused."""
    names = archive.namelist()
    unsafe = [n for n in names if n.startswith("/") or ".." in Path(n).parts or "\\" in n or n[1:2] == ":"]
    if unsafe:
        raise ModelBundleError(f"{path}: unsafe paths in zip: {unsafe[:5]}")
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ModelBundleError(f"{path}: zip holds duplicate entries: {duplicates[:5]}")
    return names


def _zip_prefix(archive: zipfile.ZipFile, path: Path) -> str:
    """'' when model.json is at the zip's root, 'folder/' when the zip holds one bundle folder.

    Refuses absolute, drive-letter, backslash and '..' entries and duplicate names (which tools resolve differently).
    """
    names = safe_zip_names(archive, path)
    specs = [n for n in names if Path(n).name == SPEC_FILE]
    if len(specs) != 1 or len(Path(specs[0]).parts) > 2:
        raise ModelBundleError(f"{path}: zip must hold exactly one {SPEC_FILE} at its root or in one folder")
    return specs[0][: -len(SPEC_FILE)]


def read_spec_bytes(path: Path) -> bytes:
    """Only ``model.json``'s bytes (a folder's weights are not opened)."""
    return read_member(path, SPEC_FILE, MAX_SPEC_BYTES) if path.is_dir() else read_bundle_files(path)[0]
