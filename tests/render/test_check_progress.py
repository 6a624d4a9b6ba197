"""``render --check`` over a large audience reports how far it got, once per thousand rendered."""

from __future__ import annotations

from pathlib import Path

from sponsorcast.render import RecipientSource, check_campaign_file
from sponsorcast.render.parallel import counted
from tests.support.project import Project


def test_counted_reports_every_thousand_scaled_by_the_shards() -> None:
    seen: list[int] = []
    rows = [{"n": i} for i in range(2500)]
    assert list(counted(rows, seen.append)) == rows
    assert seen == [1000, 2000]
    seen.clear()
    list(counted(rows, seen.append, scale=4))  # one of four equal shards
    assert seen == [4000, 8000]
    assert list(counted(rows, None)) == rows


def test_a_check_tells_its_progress_and_still_counts_everyone(
    project: Project, tmp_path: Path
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(3200)),
        encoding="utf-8",
    )
    campaign = project.path / "c.md"
    campaign.write_text("---\nsubject: Hi\n---\nHello {{ first_name }}.\n", encoding="utf-8")
    source = RecipientSource(project.config, leads_csv=leads)
    seen: list[int] = []
    source.progress = seen.append
    try:
        result = check_campaign_file(campaign, source)
    finally:
        source.close()
    assert result.report.checked == 3200 and not result.report.problems
    assert seen == [1000, 2000, 3000]
