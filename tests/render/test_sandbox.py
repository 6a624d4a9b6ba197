"""Templates are bounded: every resource bomb is a template error (file, line, exit 2), refused
before it allocates, and nothing is snapshotted."""

from __future__ import annotations

import resource

import pytest
import sqlalchemy as sa

from sponsorcast.render import sandbox
from sponsorcast.store import Store
from tests.support.project import Project

LEADS = "email,first_name\nada@example.com,Ada\nbob@example.com,Bob\n"
HEAD = "---\nsubject: Hi {{ first_name }}\naudience:\n  type: all\n---\nHello {{ first_name }}.\n"

BOMBS = [
    ("{{ 'a'.ljust(10**9) }}", "a padding width of 1,000,000,000 is over the limit of 10,000"),
    ("{{ 'a'.center(10**9) }}", "a padding width of 1,000,000,000 is over the limit of 10,000"),
    (
        "{{ first_name.zfill(10**9) }}",
        "a padding width of 1,000,000,000 is over the limit of 10,000",
    ),
    ("{{ 'x'|center(10**9) }}", "a padding width of 1,000,000,000 is over the limit of 10,000"),
    (
        "{{ '{:>999999999}'.format('x') }}",
        "a width in a format spec of 999,999,999 is over the limit of 10,000",
    ),
    (
        "{{ '{:>{}}'.format('a', 10**9) }}",
        "a width in a format spec of 1,000,000,000 is over the limit of 10,000",
    ),
    (
        "{{ '%999999999s' % 'x' }}",
        "a width in a %-format of 999,999,999 is over the limit of 10,000",
    ),
    (
        "{{ '%.999999999f' % 1.5 }}",
        "a width in a %-format of 999,999,999 is over the limit of 10,000",
    ),
    (
        "{{ '%999999999s'|format('x') }}",
        "a width in a %-format of 999,999,999 is over the limit of 10,000",
    ),
    ("{{ 'a'*10**9 }}", "a repeated text would be 1,000,000,000 long, over the limit of 1,000,000"),
    (
        "{{ 10**9 * first_name }}",
        "a repeated text would be 3,000,000,000 long, over the limit of 1,000,000",
    ),
    (
        "{{ ([1]*10**9)|length }}",
        "a repeated list would be 1,000,000,000 long, over the limit of 100,000",
    ),
    ("{{ 7 ** 10000000 }}", "7 ** 10000000 is over the limit of 100,000 bits"),
    (
        "{{ ('x'*900000).replace('x', 'yy') }}",
        "a replaced text would be 1,800,000 long, over the limit of 1,000,000",
    ),
    (
        "{{ ('ab'*500000).join(['x', 'y', 'z']) }}",
        "a joined text would be 2,000,003 long, over the limit of 1,000,000",
    ),
    (
        "{{ ['x', 'y', 'z']|join('ab'*500000) }}",
        "a joined text would be 2,000,003 long, over the limit of 1,000,000",
    ),
    (
        "{{ 'a\\tb'.expandtabs(10**9) }}",
        "a text with expanded tabs would be 1,000,000,000 long, over the limit of 1,000,000",
    ),
    (
        "{{ [1]|slice(10**9)|list }}",
        "a slice or batch count of 1,000,000,000 is over the limit of 100,000",
    ),
    (
        "{{ {'a': 1}|tojson(indent=10**9) }}",
        "a JSON indent of 1,000,000,000 is over the limit of 10,000",
    ),
    (
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
        "the template produces more than 1,000,000 characters for one recipient",
    ),
    (
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "the template calls itself too deeply (a recursive macro?)",
    ),
]


@pytest.fixture
def leads(project: Project) -> None:
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(("line", "says"), BOMBS, ids=[b[0] for b in BOMBS])
def test_resource_bombs_are_template_errors(
    project: Project, store: Store, leads: None, line: str, says: str
) -> None:
    (project.path / "bomb.md").write_text(HEAD + line + "\n", encoding="utf-8")
    before = _max_rss_mb()
    r = project.run("render", "bomb.md", "--check")
    assert r.exit_code == 2, r.stdout + r.stderr
    assert f"bomb.md:7: {says}" in r.stdout
    r = project.run("send", "bomb.md", "--yes")
    assert r.exit_code == 2
    assert f"bomb.md:7: {says}" in r.stderr
    assert _max_rss_mb() - before < 200, "the bomb allocated before it was refused"
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign")).scalar() == 0


def test_lipsum_is_not_available(project: Project, leads: None) -> None:
    (project.path / "bomb.md").write_text(HEAD + "{{ lipsum(10**6) }}\n", encoding="utf-8")
    r = project.run("render", "bomb.md", "--check")
    assert r.exit_code == 1
    assert "bomb.md:7: undefined variable 'lipsum' (2 of 2 recipients" in r.stdout


def test_a_render_past_its_time_stops_the_check(
    project: Project, leads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", 0.2)
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    (project.path / "slow.md").write_text(HEAD + loops + "\n", encoding="utf-8")
    r = project.run("render", "slow.md", "--check")
    assert r.exit_code == 2
    assert "slow.md:7: the template ran for more than 0.2 s for one recipient" in r.stdout


def test_macro_fan_out_without_loops_stops_on_the_clock(
    project: Project, leads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", 0.2)
    fan = (
        "{% macro f(n) %}{% if n < 40 %}{{ f(n+1) }}{{ f(n+1) }}{% endif %}{% endmacro %}{{ f(1) }}"
    )
    (project.path / "fan.md").write_text(HEAD + fan + "\n", encoding="utf-8")
    r = project.run("render", "fan.md", "--check")
    assert r.exit_code == 2
    assert "the template ran for more than 0.2 s for one recipient" in r.stdout


def test_guarded_loops_keep_their_meaning(project: Project, leads: None) -> None:
    body = (
        "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}/{{ loop.length }}{{ x }}"
        "{% if not loop.last %},{% endif %}{% endfor %}"
        " {% for y in [] %}never{% else %}empty{% endfor %}"
        " {{ '%5s|' % 'x' }}{{ 'ab'.ljust(4, '.') }}{{ ['p', 'q']|join('+') }}\n"
    )
    (project.path / "ok.md").write_text(HEAD + body, encoding="utf-8")
    r = project.run("render", "ok.md", "--to", "ada@example.com")
    assert r.exit_code == 0, r.stderr
    assert "1/3a,2/3b,3/3c empty     x|ab..p+q" in r.stdout
