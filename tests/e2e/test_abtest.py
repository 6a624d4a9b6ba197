"""An A/B test end to end against the Resend stand-in: the winner reaches the held recipients
exactly once although the picking process is SIGKILLed mid-send and two runs then overlap."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from email.utils import parseaddr

import pytest
import sqlalchemy as sa

from sponsorcast.store import Store
from tests.support.e2e import add_leads, assert_exactly_once, emails, resend_project, run, spawn
from tests.support.fakeresend import FakeResend
from tests.support.pg import both_store_backends  # noqa: F401 - every test here runs on SQLite and on PostgreSQL
from tests.support.project import Project

AB = """\
---
subject: "{{ first_name }}, see us at booth 12"
variants:
  - name: a
  - name: b
    subject: "{{ first_name }}, one day left"
test:
  share: 10%
  pick_after: 4h
---
Hi {{ first_name }}, thanks for stopping by.
"""


@pytest.mark.slow
def test_the_winner_reaches_every_held_recipient_once_across_sigkill_and_overlap(
    project: Project, store: Store, fake_resend: FakeResend
) -> None:
    resend_project(project, fake_resend)
    (project.path / "ab.md").write_text(AB, encoding="utf-8")
    people = emails(2000)
    add_leads(store, people)
    code, out, err = run(project, fake_resend, "send", "ab.md", "--yes")
    assert code == 0, (out, err)
    assert len(fake_resend.accepted) == 200  # the test group alone

    fake_resend.configure(latency=0.05, fail_rate=0.1, lose_rate=0.1, seed=3, rate=40)
    proc = spawn(project, fake_resend, "campaigns", "pick", "ab", "--variant", "b")
    time.sleep(random.Random(2).uniform(1.0, 1.5))
    assert proc.poll() is None, "the pick sent everything before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT winner FROM campaign")).scalar() == "b"

    for _ in range(10):  # two overlapping runs at a time, until the campaign is sent
        procs = [
            spawn(project, fake_resend, "send", "ab.md", "--yes"),
            spawn(project, fake_resend, "run-due"),
        ]
        for p in procs:
            p.communicate(timeout=120)
        with store.read() as conn:
            if conn.execute(sa.text("SELECT status FROM campaign")).scalar() == "sent":
                break
    else:
        pytest.fail("the winner was never sent to everyone")
    assert_exactly_once(fake_resend, store, people)
    subjects = Counter("b" if "one day left" in a.subject else "a" for a in fake_resend.accepted)
    assert subjects == Counter({"a": 100, "b": 1900})
    with store.read() as conn:
        rows = conn.execute(sa.text("SELECT variant, count(*) FROM delivery GROUP BY variant"))
        variants = {str(v): int(n) for v, n in rows.all()}
    assert variants == {"a": 100, "b": 1900}
    assert {parseaddr(a.to[0])[1] for a in fake_resend.accepted} == set(people)
