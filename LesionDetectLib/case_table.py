"""A case table, the batch form of ``--channel``: ``lesiondetect detect cases.csv`` names each case's sequences.

A CSV file with a header row: one column per input channel, named as the model's channels (any letter case), and
an optional ``case`` column naming each case's outputs (default: the first channel file's name). One row per case;
paths are relative to the table's folder. The first channel column is each case's reference: the other channels
are resampled onto its grid and the outputs lie on it. Every problem of the table is reported before any case runs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .channels import Inputs, with_main_channel
from .errors import InputImageError
from .io import read_volume, volume_stem
from .model_spec import SAFE_NAME
from .volume import Volume

CASE_COLUMN = "case"
TABLE_SUFFIX = ".csv"


@dataclass(frozen=True)
class TableCase:
    """One row: the outputs' name and (channel, path) of every sequence, the reference first."""

    row: int
    stem: str
    channels: tuple[tuple[str, Path], ...]

    @property
    def reference(self) -> Path:
        return self.channels[0][1]


@dataclass(frozen=True)
class CaseTable:
    """The cases of a table, found by their reference path (the path `batch.run_cases` is given)."""

    path: Path
    cases: tuple[TableCase, ...]

    def references(self) -> list[Path]:
        return [case.reference for case in self.cases]

    def case_of(self, reference: Path) -> TableCase:
        return next(case for case in self.cases if case.reference == reference)


def is_case_table(name: str) -> bool:
    """Whether a command-line input names a case table (a ``.csv`` file)."""
    return name.lower().endswith(TABLE_SUFFIX)


def read_case_table(path: Path) -> CaseTable:
    """The table at ``path``; one `InputImageError` lists all its problems."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputImageError(f"{path}: not a readable case table ({getattr(error, 'strerror', None) or error})") from None
    rows = list(csv.reader(text.splitlines()))
    rows = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise InputImageError(f"{path}: the case table is empty (a header row of channel names, then one row per case)")
    (_, header), *body = rows
    header = [name.strip() for name in header]
    problems = _header_problems(header)
    if not body:
        problems.append("no case rows below the header")
    cases = [] if problems else [_case(number, row, header, path.parent, problems) for number, row in body]
    problems += _repeated(cases)
    if problems:
        raise InputImageError(f"{path}: {len(problems)} problem(s) in the case table: " + "; ".join(problems))
    return CaseTable(path, tuple(cases))


def _header_problems(header: list[str]) -> list[str]:
    problems = []
    if "" in header:
        problems.append(f"header column {header.index('') + 1} has no name")
    folded = [name.casefold() for name in header]
    again = [name for number, name in enumerate(header) if name and folded[number] in folded[:number]]
    if again:
        problems.append(f"column {again[0]!r} appears twice in the header")
    if not [key for key in folded if key and key != CASE_COLUMN]:
        problems.append("the header names no channel column (e.g. FLAIR,T1)")
    return problems


def _case(number: int, row: list[str], header: list[str], base: Path, problems: list[str]) -> TableCase:
    cells = [cell.strip() for cell in row]
    if len(cells) > len(header):
        problems.append(f"row {number} has {len(cells)} cells for {len(header)} columns")
    values = dict(zip(header, cells + [""] * (len(header) - len(cells))))
    stem = next((values[name] for name in header if name.casefold() == CASE_COLUMN), "")
    channels = [(name, _path(value, base)) for name, value in values.items() if name.casefold() != CASE_COLUMN and value]
    empty = [name for name, value in values.items() if name.casefold() != CASE_COLUMN and not value]
    where = f"row {number}" + (f" (case {stem})" if stem else "")
    if empty:
        problems.append(f"{where}: no {empty[0]} path")
    if stem and not SAFE_NAME.fullmatch(stem):
        problems.append(f"{where}: the case name {stem!r} is not a plain file name")
    if not channels:
        return TableCase(number, stem, ())
    return TableCase(number, stem or volume_stem(channels[0][1]), tuple(channels))


def _path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _repeated(cases: list[TableCase]) -> list[str]:
    """Rows that would write the same outputs, or read the same reference file."""
    problems: list[str] = []
    outputs: dict[str, int] = {}
    references: dict[Path, int] = {}
    for case in (case for case in cases if case.channels):
        if case.stem.casefold() in outputs:
            problems.append(f"rows {outputs[case.stem.casefold()]} and {case.row} both write {case.stem}.* "
                            "(give each a 'case' name)")
        if case.reference in references:
            problems.append(f"rows {references[case.reference]} and {case.row} give the same {case.channels[0][0]} "
                            f"file {case.reference}")
        outputs.setdefault(case.stem.casefold(), case.row)
        references.setdefault(case.reference, case.row)
    return problems


def output_stem(path: Path, table: CaseTable | None) -> str:
    """The outputs' name of the case read from ``path``."""
    return table.case_of(path).stem if table is not None else volume_stem(path)


def case_inputs(path: Path, volume: Volume, table: CaseTable | None, channels: tuple[tuple[str, Path], ...],
                names: list[str]) -> Inputs:
    """What `detect` is given for the case read from ``path`` (``volume``): its table row's sequences, named by the
    table's columns (which must be the model's channels), else the ``--channel`` ones beside it
    (`channels.with_main_channel`)."""
    if table is None:
        return with_main_channel(volume, {name: read_volume(other) for name, other in channels}, names)
    (first, _), *others = table.case_of(path).channels
    return {first: volume, **{name: read_volume(other) for name, other in others}}
