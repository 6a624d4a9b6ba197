"""CLI: ``render`` — preview one recipient's email, or ``--check`` every recipient."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load
from sponsorcast.errors import BadInput, ExitCode, Reported

if TYPE_CHECKING:
    from sponsorcast.render import CheckResult, Preview, Problem


class Format(StrEnum):
    """Output formats of ``render``."""

    text = "text"
    json = "json"
    github = "github"


@handle_errors
def render(
    campaigns: Annotated[
        list[Path],
        typer.Argument(
            metavar="CAMPAIGN_FILE",
            show_default=False,
            help="Campaign files (.md, .yaml) or directories of them.",
        ),
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="EMAIL", help="Preview this lead (default: the audience's first)."
        ),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            metavar="NAME",
            help="Preview this variant of an A/B test (default: its first).",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Render every recipient (every variant of an A/B test) and list every problem "
            "(exit 1 if any).",
        ),
    ] = False,
    leads: Annotated[
        Path | None,
        typer.Option(
            "--leads",
            metavar="CSV",
            help="Take recipients from this CSV instead of the store (the store is not touched).",
        ),
    ] = None,
    format_: Annotated[
        Format,
        typer.Option(
            "--format",
            metavar="text|json|github",
            help="text, json, or github (::error annotations for GitHub Actions).",
        ),
    ] = Format.text,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Write the HTML part to FILE instead of printing it."
        ),
    ] = None,
    open_: Annotated[
        bool,
        typer.Option("--open", help="Write the HTML part to a temp file and open it in a browser."),
    ] = False,
) -> None:
    """Show a campaign's email for one recipient, or check that it renders for every recipient."""
    from sponsorcast.campaign import campaign_files
    from sponsorcast.render import RecipientSource, check_campaign_file, preview_campaign

    if check and to:
        raise BadInput("--to previews one recipient; it cannot be combined with --check.")
    if check and variant:
        raise BadInput("--check checks every variant; --variant is for a preview.")
    if check and (html or open_):
        raise BadInput("--html and --open show a preview; they cannot be combined with --check.")
    files = [f for path in campaigns for f in campaign_files(path)]
    if (html or open_) and len(files) > 1:
        raise BadInput("--html and --open take a single campaign file.")
    source = RecipientSource(load(project=leads is None), leads_csv=leads)
    try:
        if check:
            results = []
            for f in files:
                with console.CountProgress(f"Checking {f}") as progress:
                    source.progress = progress.update
                    results.append(check_campaign_file(f, source))
            _print_check(results, format_)
            if any(r.invalid for r in results):
                raise Reported(ExitCode.BAD_INPUT)
            if any(r.report.problems for r in results):
                raise Reported(ExitCode.FAILED)
            return
        previews = [preview_campaign(f, source, to, variant) for f in files]
    finally:
        source.close()
    if open_ and html is None:
        html = _temp_html(previews[0].campaign_id)
    if html:
        try:
            html.write_text(previews[0].message.html, encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"Cannot write {html}: {exc.strerror or exc}.") from None
    if open_ and html is not None:
        _open_in_browser(html)
    if format_ is Format.json:
        data = [p.as_dict() for p in previews]
        console.print_json(data[0] if len(data) == 1 else data)
        return
    for number, preview in enumerate(previews):
        if number:
            console.say("")
        _print_preview(preview, html)


def _temp_html(campaign_id: str) -> Path:
    import tempfile  # on use: keeps start-up fast

    handle, name = tempfile.mkstemp(prefix=f"sponsorcast-{campaign_id}-", suffix=".html")
    os.close(handle)
    return Path(name)


def _open_in_browser(path: Path) -> None:
    import webbrowser  # on use: keeps start-up fast

    if not webbrowser.open(path.resolve().as_uri()):
        console.warn(f"No browser could be started here; open {path} in one.")


def _print_preview(preview: Preview, html_file: Path | None) -> None:
    msg = preview.message
    if preview.note:
        console.warn(preview.note)
    lines = [
        f"Campaign: {preview.campaign_id} ({preview.path})",
        f"To:       {preview.to}",
        f"From:     {preview.from_address or '(not set: sending will be refused)'}",
    ]
    if preview.reply_to:
        lines.append(f"Reply-To: {preview.reply_to}")
    lines.append(f"Subject:  {msg.subject}")
    lines += ["", "----- text part -----", msg.text.rstrip("\n")]
    if html_file is not None:
        lines += ["----- html part -----", f"(written to {html_file})"]
    else:
        lines += ["----- html part -----", msg.html.rstrip("\n")]
    for line in lines:
        typer.echo(line)


def _print_check(results: list[CheckResult], format_: Format) -> None:
    if format_ is Format.json:
        console.print_json(
            {
                "ok": not any(r.report.problems for r in results),
                "campaigns": [r.as_dict() for r in results],
                "problems": sum(len(r.report.problems) for r in results),
            }
        )
        return
    for result in results:
        report = result.report
        if format_ is Format.github:
            for warning in result.warnings:
                typer.echo(f"::warning file={_gh_property(report.path)}::{_gh_data(warning)}")
            for p in report.problems:
                props = f"file={_gh_property(p.path)}"
                if p.line is not None:
                    props += f",line={p.line}"
                typer.echo(f"::error {props}::{_gh_data(_problem_text(p, report.checked))}")
            continue
        if result.invalid:
            typer.echo(f"{report.path}: invalid")
        elif report.checked == 0:
            typer.echo(f"{report.path}: the audience is empty, nothing was checked")
        else:
            count = len(report.problems)
            state = "ok" if not count else f"{count} problem{'s' if count > 1 else ''}"
            typer.echo(f"{report.path}: {_recipients(report.checked)} checked, {state}")
        for p in report.problems:
            where = f"{p.path}:{p.line}" if p.line is not None else p.path
            typer.echo(f"  {where}: {_problem_text(p, report.checked)}")
        for warning in result.warnings:
            typer.echo(f"  warning: {warning}")
    total = sum(len(r.report.problems) for r in results)
    failing = sum(1 for r in results if r.report.problems)
    summary = f"{len(results)} campaign file{'s' if len(results) != 1 else ''} checked"
    summary += (
        f": {total} problem{'s' if total != 1 else ''} in {failing}." if total else ": no problems."
    )
    typer.echo(summary)


def _recipients(n: int) -> str:
    return f"{n} recipient{'s' if n != 1 else ''}"


def _problem_text(problem: Problem, checked: int) -> str:
    if not problem.count:
        return problem.message
    text = f"{problem.message} ({problem.count} of {_recipients(checked)}"
    if problem.example:
        text += f", e.g. {problem.example}"
    return text + ")"


def _gh_data(text: str) -> str:
    """Escape a GitHub Actions workflow-command message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    """Escape a GitHub Actions workflow-command property value."""
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def register(app: typer.Typer) -> None:
    """Add the ``render`` command."""
    app.command("render")(render)
