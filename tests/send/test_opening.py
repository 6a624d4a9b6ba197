"""Opening a new send: the key check and the snapshot run beside the render check.

Through the CLI against the stand-in on 127.0.0.1: a refused key stops the send with nothing
recorded, and the limit the key check learns lets the run start without a probe. Through the
library: a failed check rolls back the snapshot written beside it.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sponsorcast.errors import TemplateError
from sponsorcast.send import opening
from sponsorcast.send.plan import plan_send
from sponsorcast.send.snapshot import take_snapshot
from sponsorcast.store import Store
from tests.support.fakeresend import FakeResend
from tests.support.pg import both_store_backends  # noqa: F401 - each test on SQLite and PostgreSQL
from tests.support.project import Project

LEADS = "email,first_name\nada@example.com,Ada\nbob@example.com,Bob\ncy@example.com,Cy\n"
CAMPAIGN = (
    "---\nsubject: Hi {{ first_name }}\naudience:\n  type: all\n---\nHello {{ first_name }}.\n"
)


def _setup(project: Project, fake: FakeResend, *, campaign: str = CAMPAIGN) -> None:
    path = project.path / "sponsorcast.toml"  # the project's store, SQLite or PostgreSQL
    toml = path.read_text(encoding="utf-8").replace('kind = "outbox"', 'kind = "resend"')
    toml += f'\n[resend]\nbase_url = "{fake.url}"\nbatch_size = 1\nrate_limit = "auto"\n'
    path.write_text(toml, encoding="utf-8")
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(campaign, encoding="utf-8")


def _rows(store: Store) -> tuple[int, int, int]:
    with store.read() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("campaign", "delivery", "send_batch")
        )


def test_a_refused_key_stops_the_send_before_anything_is_recorded(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    _setup(project, fake_resend)
    r = project.run("send", "c.md", "--yes", env={"RESEND_API_KEY": "re_revoked_key_1234"})
    assert r.exit_code == 3
    assert r.stderr.splitlines()[0] == (
        f"Error: {fake_resend.url} refused the key (403); nothing was sent."
    )
    assert _rows(store) == (0, 0, 0)  # no campaign, no snapshot
    record = fake_resend.record()
    assert record["counters"]["emails"] == 0
    assert record["counters"]["requests"] == 1  # the key check alone, GET /domains
    assert record["counters"]["auth_errors"] == 1


def test_the_key_check_teaches_the_limit_so_the_run_needs_no_probe(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    fake_resend.configure(rate=10, latency=0.4)
    _setup(project, fake_resend)
    r = project.run("send", "c.md", "--yes", env={"RESEND_API_KEY": fake_resend.api_key})
    assert r.exit_code == 0, r.stderr
    record = fake_resend.record()
    assert record["counters"]["requests"] == 4  # the key check, then three batches of one
    assert record["counters"]["rate_limited"] == 0
    times = sorted(email["time"] for email in record["accepted"])
    # "auto" starts at 2/s, and a probe would hold the others for its 0.4 s answer; the key
    # check learned 10/s before the first email, so the three left together
    assert len(times) == 3 and times[-1] - times[0] < 0.2
    assert _rows(store) == (1, 3, 3)


def test_a_sending_only_key_is_a_good_key(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    fake_resend.configure(key_access="sending_access")
    _setup(project, fake_resend)
    r = project.run("send", "c.md", "--yes", env={"RESEND_API_KEY": fake_resend.api_key})
    assert r.exit_code == 0, r.stderr
    assert fake_resend.record()["distinct_recipients"] == 3


def test_a_failed_check_rolls_back_the_snapshot_written_beside_it(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(
        CAMPAIGN.replace("Hello {{ first_name }}.", "Hello {{ 1 // (first_name != 'Cy') }}."),
        encoding="utf-8",
    )
    config = project.config
    plan = plan_send(store, config, project.path / "c.md")
    answers: list[bool] = []
    written = take_snapshot

    def watched(*args: Any, commit_when: Any, **kwargs: Any) -> bool:
        def asked() -> bool:
            answers.append(commit_when())
            return answers[-1]

        return written(*args, commit_when=asked, **kwargs)

    monkeypatch.setattr("sponsorcast.send.opening.take_snapshot", watched)
    with pytest.raises(TemplateError):
        opening.open_send(store, config, plan, 100)
    assert answers in ([], [False])  # written and rolled back, or not begun before the end
    assert _rows(store) == (0, 0, 0)


def test_a_passed_check_commits_the_snapshot_and_hands_over_the_transport(
    project: Project, store: Store
) -> None:
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(CAMPAIGN, encoding="utf-8")
    config = project.config
    plan = plan_send(store, config, project.path / "c.md")
    transport = opening.open_send(store, config, plan, 2)
    assert transport.name == "outbox"
    assert _rows(store) == (1, 3, 2)  # three deliveries in batches of two


def test_a_429_to_the_key_check_does_not_wait_on_the_snapshot_beside_it(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import threading
    import time

    import httpx
    import respx

    base = "http://127.0.0.1:9"  # never reached: respx answers
    # respx answers this process only: the key check is asked here, not by a helper process
    monkeypatch.setattr("sponsorcast.send.keyprobe.start_probe", lambda config: None)
    path = project.path / "sponsorcast.toml"
    toml = path.read_text(encoding="utf-8").replace('kind = "outbox"', 'kind = "resend"')
    path.write_text(toml + f'\n[resend]\nbase_url = "{base}"\nbatch_size = 2\n', "utf-8")
    (project.path / "leads.csv").write_text(LEADS, encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "c.md").write_text(CAMPAIGN, encoding="utf-8")

    def batch(request: httpx.Request) -> httpx.Response:
        emails = json.loads(request.content)
        return httpx.Response(200, json={"data": [{"id": f"m-{e['to'][0]}"} for e in emails]})

    result: list[Any] = []
    with respx.mock(base_url=base, assert_all_called=True) as api:

        def limited(request: httpx.Request) -> httpx.Response:
            time.sleep(0.5)  # the answer comes once the snapshot waits for it, lock held
            return httpx.Response(
                429,
                headers={"ratelimit-limit": "10", "retry-after": "0"},
                json={"name": "rate_limit_exceeded", "message": "Too many requests."},
            )

        api.get("/domains").mock(side_effect=limited)
        sent = api.post("/emails/batch").mock(side_effect=batch)
        run = threading.Thread(
            target=lambda: result.append(
                project.run("send", "c.md", "--yes", env={"RESEND_API_KEY": "re_test_123456"})
            ),
            daemon=True,
        )
        run.start()
        run.join(timeout=20)  # a store lock waited on by its own holder would last 30 s
        assert not run.is_alive(), "the send hung"
    assert result[0].exit_code == 0, result[0].stderr
    assert sent.call_count == 2  # three people in batches of two
    assert _rows(store) == (1, 3, 2)
