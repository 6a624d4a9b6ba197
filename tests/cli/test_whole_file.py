"""``whole_file``: an output file is there whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from sponsorcast.cli.invocation import whole_file


def test_a_file_appears_only_once_written(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with whole_file(target) as out:
        out.write("a,b\n")
        assert not target.exists() and (tmp_path / "out.csv.part").exists()
    assert target.read_text(encoding="utf-8") == "a,b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_a_failed_write_leaves_the_old_file_and_no_part(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError), whole_file(target) as out:
        out.write("half")
        raise RuntimeError("the store went away")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
