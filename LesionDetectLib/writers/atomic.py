"""Atomic output: write to a private temporary name in the target folder, then `os.replace` it into place.

- `atomic_output(path)`: one file; the temporary file is removed on any exception (Ctrl-C included).
- `staged_outputs(folder)`: several outputs (files and folders) of one case, published together when all
  were written; if publishing fails half-way, the previous outputs are put back (all old or all new);
  `write_staged(staging, final, write)` writes one of them.
- `check_writable(folder)`: fail early, before a long computation, when outputs could not be written.
- `check_free_space(folder, needed)`: fail early when the file system has less free space than that.

`OSError`s (full disk, permissions, read-only file system) become `OutputError`s naming the path. Cleanup and
rollback run `cancellation.shielded`: a signal arriving meanwhile takes effect once they are done.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ..cancellation import shielded
from ..errors import OutputError


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def output_error(path: Path, error: OSError) -> OutputError:
    """An `OutputError` for a failed write of ``path``."""
    return OutputError(f"cannot write {path}: {_reason(error)}")


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_file(path: Path) -> Path:
    """A new empty private (0600) file beside ``path``: ``.<name>.<random><suffix>``."""
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(descriptor)
    return Path(name)


def _publish(temporary: Path, path: Path, is_dir: bool = False) -> None:
    """Give the temporary output ordinary permissions and move it to ``path``."""
    os.chmod(temporary, (0o777 if is_dir else 0o666) & ~_umask())
    if is_dir:
        os.rename(temporary, path)
    else:
        os.replace(temporary, path)


def _remove(path: Path) -> None:
    """Remove a file or folder, ignoring errors (cleanup must never hide the original failure)."""
    with suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on any exception it is removed.

    The temporary name keeps the final extension (SimpleITK picks the format from it).
    """
    path = Path(path)
    try:
        temporary = _temporary_file(path)
    except OSError as error:
        raise output_error(path, error) from error
    try:
        yield temporary
        _publish(temporary, path)
    except BaseException as error:
        with shielded():
            _remove(temporary)
        if isinstance(error, OSError):
            raise output_error(path, error) from error
        raise


def check_writable(folder: str | Path) -> None:
    """Create ``folder`` if needed and prove it writable with a probe file; else raise `OutputError`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".lesiondetect-probe-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"output folder {folder} is not writable: {_reason(error)}") from error


def check_free_space(folder: str | Path, needed: int) -> None:
    """Raise `OutputError` when ``folder``'s file system has fewer than ``needed`` bytes free (unknown: no check)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise OutputError(
            f"not enough free disk space in {folder}: the outputs need about {needed / 2**20:.1f} MiB, "
            f"{free / 2**20:.1f} MiB is free"
        )


@dataclass
class _Entry:
    final: Path
    temporary: Path | None  # None: remove ``final`` (a stale output of an earlier run)
    is_dir: bool = False  # the new output is a folder
    backup: Path | None = None
    moved_aside: bool = False  # the backup is the old output itself, not a hard link to it
    placed: bool = False


class Staging:
    """Outputs written under temporary names, published together by `commit` (see `staged_outputs`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.entries: list[_Entry] = []

    def file(self, final: str | Path) -> Path:
        """A private temporary file to write ``final``'s content into."""
        final = self._inside(final)
        try:
            temporary = _temporary_file(final)
        except OSError as error:
            raise output_error(final, error) from error
        self.entries.append(_Entry(final, temporary))
        return temporary

    def directory(self, final: str | Path) -> Path:
        """A private temporary folder to fill; it replaces the folder ``final`` as a whole."""
        final = self._inside(final)
        try:
            temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        except OSError as error:
            raise output_error(final, error) from error
        self.entries.append(_Entry(final, temporary, is_dir=True))
        return temporary

    def remove(self, final: str | Path) -> None:
        """Delete ``final`` (file or folder) when committing, if it exists."""
        self.entries.append(_Entry(self._inside(final), None))

    def discard(self) -> None:
        """Remove every temporary output."""
        with shielded():
            for entry in self.entries:
                if entry.temporary is not None:
                    _remove(entry.temporary)

    def commit(self) -> None:
        """Publish every output; on failure restore the previous ones and raise `OutputError`."""
        current = None
        try:
            for current in self.entries:
                self._place(current)
        except BaseException as error:
            with shielded():
                self._roll_back()
                self.discard()
            if isinstance(error, OSError):
                raise output_error(current.final, error) from error
            raise
        with shielded():
            for entry in self.entries:
                if entry.backup is not None:
                    _remove(entry.backup)

    def _inside(self, final: str | Path) -> Path:
        final = Path(final)
        if final.parent.resolve() != self.folder.resolve():
            raise ValueError(f"{final} is not directly inside {self.folder}")
        return final

    def _place(self, entry: _Entry) -> None:
        final = entry.final
        if os.path.lexists(final):
            entry.backup = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old")
            moves_aside = entry.is_dir or entry.temporary is None
            if not moves_aside:
                try:  # a hard link keeps the old file in place until the new one replaces it
                    os.link(final, entry.backup)
                except OSError:
                    moves_aside = True
            if moves_aside:
                os.rename(final, entry.backup)
                entry.moved_aside = True
        if entry.temporary is not None:
            _publish(entry.temporary, final, entry.is_dir)
            entry.placed = True

    def _roll_back(self) -> None:
        for entry in reversed(self.entries):
            if entry.placed:
                _remove(entry.final)
            if entry.backup is None:
                continue
            if entry.placed or entry.moved_aside:
                with suppress(OSError):
                    os.replace(entry.backup, entry.final)
            else:
                _remove(entry.backup)


@contextmanager
def staged_outputs(folder: str | Path) -> Iterator[Staging]:
    """Collect outputs in a `Staging`; commit them all if the block succeeds, else remove the temporaries."""
    staging = Staging(Path(folder))
    try:
        yield staging
    except BaseException:
        staging.discard()
        raise
    staging.commit()


def write_staged(staging: Staging, final: Path, write: Callable[[Path], object], folder: bool = False) -> None:
    """Run ``write`` on a staged temporary for ``final``; errors name ``final``, not the temporary."""
    temporary = staging.directory(final) if folder else staging.file(final)
    try:
        write(temporary)
    except OutputError as error:
        raise OutputError(str(error).replace(str(temporary), str(final))) from error
    except OSError as error:
        raise output_error(final, error) from error
