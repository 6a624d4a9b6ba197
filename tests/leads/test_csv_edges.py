"""CSV edge cases that used to be silent: a huge header, mixed encodings; and a key doctor chokes on."""

from __future__ import annotations

import sqlalchemy as sa

from sponsorcast.store import Store
from tests.support.project import Project


def _lead_count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM lead")).scalar_one())


def test_a_header_over_64k_is_refused_not_cut(project: Project, store: Store) -> None:
    header = "email," + ",".join(f"column_{i:06d}" for i in range(7000))  # ~ 100 KB, one line
    (project.path / "wide.csv").write_text(header + "\nada@example.com\n", encoding="utf-8")
    r = project.run("leads", "import", "wide.csv")
    assert r.exit_code == 2
    assert r.stderr.startswith(
        "Error: wide.csv: the header row is longer than 65,536 characters; nothing was imported."
    )
    assert _lead_count(store) == 0


def test_mixed_utf8_and_cp1252_rows_are_refused_with_their_lines(
    project: Project, store: Store
) -> None:
    lines = [
        b"email,first_name",
        "ada@example.com,Zoë".encode(),
        b"bob@example.com,Bob",
        "cat@example.com,Chloé".encode("cp1252"),
        "dan@example.com,Dvořák".encode(),
    ]
    (project.path / "mixed.csv").write_bytes(b"\n".join(lines) + b"\n")
    r = project.run("leads", "import", "mixed.csv")
    assert r.exit_code == 2
    assert (
        "mixed.csv: mixes UTF-8 (lines 2, 5) with another encoding (lines 4); read as one encoding, "
        "the other lines would be garbled, so nothing was imported."
    ) in " ".join(r.stderr.split())
    assert _lead_count(store) == 0
    named = project.run("leads", "import", "mixed.csv", "--encoding", "utf-8")
    assert named.exit_code == 2 and "cannot be decoded as utf-8 at row 4" in named.stderr


def test_a_whole_cp1252_file_still_imports(project: Project, store: Store) -> None:
    (project.path / "win.csv").write_bytes(
        "email,first_name\ncat@example.com,Chloé\n".encode("cp1252")
    )
    assert project.run("leads", "import", "win.csv").exit_code == 0
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT first_name FROM lead")).scalar() == "Chloé"


def test_doctor_with_a_non_ascii_api_key_is_one_failed_check(project: Project) -> None:
    toml = project.path / "sponsorcast.toml"
    toml.write_text(toml.read_text().replace('kind = "outbox"', 'kind = "resend"'))
    r = project.run("doctor", env={"RESEND_API_KEY": "re_ключ_123", "COLUMNS": "400"})
    assert r.exit_code != 0
    out = " ".join((r.stdout + r.stderr).split())
    assert "RESEND_API_KEY contains spaces, line breaks or non-ASCII characters" in out
    assert "Unexpected" not in out and "ключ" not in out
