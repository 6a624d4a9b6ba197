"""Rolling campaigns and ``send --include-new``: leads that join the audience later get the
campaign too, each exactly once; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

import sqlalchemy as sa

from sponsorcast.send.rolling import add_new_leads
from sponsorcast.store import Store
from sponsorcast.store.tables import delivery_t
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project
from tests.support.sending import add_leads

WELCOME = "---\nsubject: Welcome {{ first_name }}\nrolling: true\n---\nHello {{ first_name }}\n"


def _import(project: Project, name: str, people: list[str], extra: str = "") -> None:
    header = "email,name" + ("," + extra if extra else "")
    rows = "".join(f"{p}@example.com,{p.title()}{',x' if extra else ''}\n" for p in people)
    (project.path / name).write_text(header + "\n" + rows, encoding="utf-8")
    r = project.run("leads", "import", name)
    assert r.exit_code == 0, r.stderr


def _outbox(project: Project, campaign: str) -> Counter[str]:
    files = (project.path / "outbox" / campaign).glob("*.eml")
    return Counter(f.name.split("-", 1)[1].removesuffix(".eml") for f in files)


def _recipients(store: Store, campaign: str) -> Counter[str]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.recipient, delivery_t.c.status).where(
                delivery_t.c.campaign_id == campaign
            )
        ).all()
    return Counter(f"{r.recipient}:{r.status}" for r in rows)


def test_a_rolling_campaign_reaches_every_new_lead_once(project: Project, store: Store) -> None:
    (project.path / "w.md").write_text(WELCOME, encoding="utf-8")
    _import(project, "first.csv", ["ann", "bob"])
    assert project.run("send", "w.md", "--yes").exit_code == 0
    _import(project, "second.csv", ["cat", "dan"])
    first = project.run("run-due")
    assert first.exit_code == 0, first.stderr
    assert "Campaign 'w': 2 new leads of its audience added." in first.stderr
    again = project.run("run-due")
    assert (again.exit_code, again.stderr) == (0, "")  # nobody new: nothing to say
    _import(project, "third.csv", ["eve", "bob"])  # bob again: he had it already
    assert project.run("send", "w.md", "--yes").exit_code == 0
    people = ["ann", "bob", "cat", "dan", "eve"]
    assert _outbox(project, "w") == Counter({f"{p}@example.com": 1 for p in people})
    assert _recipients(store, "w") == Counter({f"{p}@example.com:sent": 1 for p in people})
    stats = project.run("stats", "w", "--json")
    assert '"total_recipients": 5' in stats.stdout and '"status": "sent"' in stats.stdout


def test_a_campaign_that_is_not_rolling_keeps_its_snapshot_unless_asked(
    project: Project, store: Store
) -> None:
    (project.path / "w.md").write_text(WELCOME.replace("rolling: true\n", ""), encoding="utf-8")
    _import(project, "first.csv", ["ann"])
    assert project.run("send", "w.md", "--yes").exit_code == 0
    _import(project, "second.csv", ["bob"])
    assert project.run("run-due").stderr == ""
    plain = project.run("send", "w.md", "--yes")
    assert "already sent; nothing was sent" in plain.stdout
    assert _outbox(project, "w") == Counter({"ann@example.com": 1})
    asked = project.run("send", "w.md", "--yes", "--include-new")
    assert asked.exit_code == 0, asked.stderr
    assert _outbox(project, "w") == Counter({"ann@example.com": 1, "bob@example.com": 1})
    refused = project.run("send", "w.md", "--include-new")  # not a terminal and no --yes
    assert refused.exit_code == 2 and "Refusing to send without --yes" in refused.stderr


def test_top_ups_at_once_add_each_new_lead_once(project: Project, store: Store) -> None:
    (project.path / "w.md").write_text(WELCOME, encoding="utf-8")
    add_leads(store, 3)
    assert project.run("send", "w.md", "--yes").exit_code == 0
    add_leads(store, 40, prefix="new")
    config = project.config
    added: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def top_up() -> None:
        try:
            start.wait()
            added.append(add_new_leads(store, config, "w", 10))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=top_up) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(added) == [0, 0, 0, 40]  # one of them added all; the others found nobody
    with store.read() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.lead_id, sa.func.count())
            .where(delivery_t.c.campaign_id == "w")
            .group_by(delivery_t.c.lead_id)
        ).all()
    assert len(rows) == 43 and {n for _lead, n in rows} == {1}


def test_a_new_lead_that_does_not_render_refuses_the_top_up(project: Project, store: Store) -> None:
    body = WELCOME.replace("Hello {{ first_name }}", "Your booth: {{ booth }}")
    (project.path / "w.md").write_text(body, encoding="utf-8")
    _import(project, "first.csv", ["ann"], extra="booth")
    assert project.run("send", "w.md", "--yes").exit_code == 0
    _import(project, "second.csv", ["bob"])  # no booth column: {{ booth }} is undefined
    before = _recipients(store, "w")
    r = project.run("send", "w.md", "--yes")
    assert (r.exit_code, r.stdout) == (2, "")
    assert "for 1 new recipient; nobody was added" in r.stderr
    assert _recipients(store, "w") == before
    due = project.run("run-due")
    assert "nobody was added" in due.stderr and due.exit_code != 0
    assert _recipients(store, "w") == before


def test_a_bad_rolling_value_is_refused(project: Project, store: Store) -> None:
    (project.path / "w.md").write_text(WELCOME.replace("true", '"yes"'), encoding="utf-8")
    _import(project, "first.csv", ["ann"])
    r = project.run("send", "w.md", "--yes")
    assert (r.exit_code, r.stdout) == (2, "")
    assert "rolling must be true or false" in r.stderr
    assert _recipients(store, "w") == Counter()
