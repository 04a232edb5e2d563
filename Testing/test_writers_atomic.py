"""`writers.atomic`: checking an output folder, and files private until published."""

from __future__ import annotations

import pytest
from writer_inputs import hidden

from LesionDetectLib.errors import OutputError
from LesionDetectLib.writers.atomic import atomic_output, check_writable


def test_unwritable_folder_raises_output_error_naming_it(tmp_path, result):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    folder = blocker / "sub"  # cannot be created, even by root
    with pytest.raises(OutputError, match=str(folder)) as caught:
        check_writable(folder)
    assert caught.value.exit_code == 5 and "\n" not in str(caught.value)
    with pytest.raises(OutputError, match="file.txt"):
        result.write(folder)
    assert blocker.read_text() == "not a folder"


def test_atomic_output_is_private_until_published(tmp_path):
    target = tmp_path / "table.csv"
    with atomic_output(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".table.csv.")
        assert temporary.suffix == ".csv" and (temporary.stat().st_mode & 0o777) == 0o600
        temporary.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new" and hidden(tmp_path) == []


@pytest.mark.parametrize("error", [ValueError("bad"), KeyboardInterrupt()])
def test_atomic_output_is_cleaned_on_error_and_keeps_the_previous_file(tmp_path, error):
    target = tmp_path / "table.csv"
    target.write_text("new")
    with pytest.raises(type(error)), atomic_output(target) as temporary:
        temporary.write_text("half")
        raise error
    assert target.read_text() == "new" and hidden(tmp_path) == []
