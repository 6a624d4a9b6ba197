"""The key check's helper process (``send.keyprobe``) against the stand-in on 127.0.0.1.

It asks nothing before ``go()``, it answers what the provider said, it is not started when
there is nothing to ask, and a send whose helper cannot start asks the key check itself.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.config import Config
from sponsorcast.send import keyprobe
from sponsorcast.store import Store
from sponsorcast.transport.resend import ResendTransport
from tests.support.fakeresend import FakeResend
from tests.support.project import Project

LEADS = "email,first_name\nada@example.com,Ada\nbob@example.com,Bob\ncy@example.com,Cy\n"
CAMPAIGN = "---\nsubject: Hi {{ first_name }}\naudience:\n  type: all\n---\nHello.\n"


def _resend(project: Project, fake: FakeResend) -> None:
    path = project.path / "sponsorcast.toml"
    toml = path.read_text(encoding="utf-8").replace('kind = "outbox"', 'kind = "resend"')
    path.write_text(toml + f'\n[resend]\nbase_url = "{fake.url}"\nbatch_size = 1\n', "utf-8")


def _config(project: Project, key: str | None) -> Config:
    return project.config_with({"RESEND_API_KEY": key} if key is not None else {})


def _requests(fake: FakeResend) -> int:
    return int(fake.record()["counters"]["requests"])


def test_the_helper_asks_once_and_only_after_go(project: Project, fake_resend: FakeResend) -> None:
    fake_resend.configure(rate=10)
    _resend(project, fake_resend)
    probe = keyprobe.start_probe(_config(project, fake_resend.api_key))
    assert probe is not None
    try:
        assert probe.ready()
        assert _requests(fake_resend) == 0  # ready, waiting: nothing asked yet
        probe.go()
        answer = probe.answer()
    finally:
        probe.close()
    assert answer is not None
    assert (answer.verdict, answer.status) == ("accepted", 200)
    assert answer.detail == f"{fake_resend.url} accepted the key"
    assert answer.headers is not None and answer.headers["ratelimit-limit"] == "10"
    assert _requests(fake_resend) == 1
    assert probe.exit_code == 0


def test_a_refused_key_is_told_by_the_helper(project: Project, fake_resend: FakeResend) -> None:
    _resend(project, fake_resend)
    probe = keyprobe.start_probe(_config(project, "re_revoked_key_1234"))
    assert probe is not None
    try:
        assert probe.ready()
        probe.go()
        answer = probe.answer()
    finally:
        probe.close()
    assert answer is not None
    assert (answer.verdict, answer.status) == ("refused", 403)


def test_a_helper_never_told_to_go_asks_nothing(project: Project, fake_resend: FakeResend) -> None:
    _resend(project, fake_resend)
    probe = keyprobe.start_probe(_config(project, fake_resend.api_key))
    assert probe is not None
    assert probe.ready()
    probe.close()  # the send ended before its opening (a bad file, a resumed campaign)
    assert probe.exit_code == 0
    assert _requests(fake_resend) == 0


@pytest.mark.parametrize(
    "key",
    [None, "   ", "re_abc\r\nBcc: victim@example.com"],
    ids=["no-key", "blank-key", "header-injection"],
)
def test_no_helper_without_a_key_it_may_ask_with(
    project: Project, fake_resend: FakeResend, key: str | None
) -> None:
    _resend(project, fake_resend)
    assert keyprobe.start_probe(_config(project, key)) is None
    assert _requests(fake_resend) == 0


def test_no_helper_for_the_outbox(project: Project) -> None:
    assert project.config.transport == "outbox"
    assert keyprobe.start_probe(_config(project, "re_test_123456")) is None


def _count_preflights(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = ResendTransport.preflight

    def counted(self: ResendTransport) -> Any:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(ResendTransport, "preflight", counted)
    return calls


def _prepare(project: Project, fake: FakeResend, campaign: str = CAMPAIGN) -> None:
    _resend(project, fake)
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(campaign, encoding="utf-8")


def _rows(store: Store) -> tuple[int, int]:
    with store.read() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("campaign", "delivery")
        )


def test_send_asks_through_the_helper(
    project: Project, store: Store, fake_resend: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prepare(project, fake_resend)
    preflights = _count_preflights(monkeypatch)
    r = project.run("send", "c.md", "--yes", env={"RESEND_API_KEY": fake_resend.api_key})
    assert r.exit_code == 0, r.stderr
    assert preflights == []  # the helper asked; this process did not
    assert _requests(fake_resend) == 4  # the key check, then three batches of one
    assert fake_resend.record()["distinct_recipients"] == 3
    assert _rows(store) == (1, 3)


def test_a_send_whose_helper_cannot_start_asks_itself(
    project: Project, store: Store, fake_resend: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prepare(project, fake_resend)
    preflights = _count_preflights(monkeypatch)
    monkeypatch.setattr("sys.executable", "/bin/false")  # the helper exits at once
    r = project.run("send", "c.md", "--yes", env={"RESEND_API_KEY": fake_resend.api_key})
    assert r.exit_code == 0, r.stderr
    assert preflights == [1]
    assert _requests(fake_resend) == 4
    assert fake_resend.record()["distinct_recipients"] == 3


def test_a_campaign_file_that_cannot_be_read_costs_no_request(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    _prepare(project, fake_resend, campaign="---\nsubject: [unclosed\n---\nHello.\n")
    r = project.run("send", "c.md", "--yes", env={"RESEND_API_KEY": fake_resend.api_key})
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: c.md")
    assert _requests(fake_resend) == 0  # the helper was never told to go
    assert _rows(store) == (0, 0)


def test_ready_without_waiting_is_false_until_the_helper_says_so() -> None:
    import subprocess
    import sys

    # a stand-in helper that says it is ready only once it reads a line
    script = "import sys; sys.stdin.readline(); print('{\"ready\": true}', flush=True)"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    probe = keyprobe.KeyProbe(proc)
    try:
        assert probe.ready(wait=False) is False
        probe.go()
        assert probe.ready() is True
        assert probe.ready(wait=False) is True  # told once, known from then on
    finally:
        probe.close()
    assert probe.exit_code == 0


def test_the_question_leaves_before_the_check_begins(
    project: Project, store: Store, fake_resend: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sponsorcast.send import opening
    from sponsorcast.send.plan import plan_send

    _prepare(project, fake_resend)
    config = _config(project, fake_resend.api_key)
    plan = plan_send(store, config, project.path / "c.md")
    events: list[str] = []
    from sponsorcast.send.plan import validate_all as checked

    def check(*args: Any, **kwargs: Any) -> int:
        events.append("check")
        return checked(*args, **kwargs)

    monkeypatch.setattr("sponsorcast.send.opening.validate_all", check)
    probe = keyprobe.start_probe(config)
    assert probe is not None
    try:
        assert probe.ready()  # started long before, as at a real send's opening
        went = probe.go

        def go() -> None:
            events.append("go")
            went()

        monkeypatch.setattr(probe, "go", go)
        opening.open_send(store, config, plan, 1, probe=probe)
    finally:
        probe.close()
    assert events == ["go", "check"]  # booked and asked in the caller, before the fork
    assert _requests(fake_resend) == 1
    assert _rows(store) == (1, 3)


def test_the_key_thread_writes_nothing_while_the_snapshot_holds_the_store(
    project: Project, store: Store, fake_resend: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot's transaction commits only once the key thread has the answer: a store
    write of that thread's while the snapshot holds SQLite's lock would wait for itself."""
    import threading

    from sponsorcast.send import opening
    from sponsorcast.send.plan import plan_send

    _prepare(project, fake_resend)
    config = _config(project, fake_resend.api_key)
    plan = plan_send(store, config, project.path / "c.md")
    holding = threading.Event()
    from sponsorcast.send.snapshot import take_snapshot as snapshot

    budget = opening.shared_budget

    def held_snapshot(*args: Any, commit_when: Any, **kwargs: Any) -> bool:
        def commit() -> bool:
            holding.set()  # the snapshot's rows are written, its transaction still open
            return bool(commit_when())

        return snapshot(*args, commit_when=commit, **kwargs)

    def late_budget(*args: Any) -> Any:
        if threading.current_thread().name == "send-key-check":
            holding.wait(timeout=5)  # let the snapshot take the store first
        return budget(*args)

    monkeypatch.setattr("sponsorcast.send.opening.take_snapshot", held_snapshot)
    monkeypatch.setattr("sponsorcast.send.opening.shared_budget", late_budget)
    monkeypatch.setattr("sponsorcast.store.engine.WRITE_QUEUE_TIMEOUT", 2.0)  # fail fast
    probe = keyprobe.start_probe(config)
    assert probe is not None
    try:
        assert probe.ready()
        opening.open_send(store, config, plan, 1, probe=probe)
    finally:
        probe.close()
    assert holding.is_set()
    assert _rows(store) == (1, 3)
    assert _requests(fake_resend) == 1
