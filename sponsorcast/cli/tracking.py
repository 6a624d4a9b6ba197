"""CLI: ``serve``, ``events import`` and ``sync`` (thin: parameters, one call into the domain, output)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sponsorcast import console
from sponsorcast.cli.invocation import handle_errors, load, open_store
from sponsorcast.wording import count

events_app = typer.Typer(
    help="Provider events saved elsewhere (webhook payloads).", no_args_is_help=True
)


@handle_errors
def serve(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, metavar="PORT", help="Port to listen on.")
    ] = 8025,
) -> None:
    """HTTP: Resend webhooks, open pixel, click redirects and one-click unsubscribe."""
    import uvicorn

    from sponsorcast.tracking.server import create_app, serve_warnings, server_config

    config = load()
    for note in serve_warnings(config):
        console.warn(note)
    web = create_app(config, open_store(config))
    console.log(f"sponsorcast serve listening on http://{host}:{port} (Ctrl-C stops it)")
    uvicorn.Server(server_config(web, host, port)).run()


@events_app.command("import")
@handle_errors
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE.jsonl", help="One saved webhook per line.")],
) -> None:
    """Apply saved Resend webhook payloads (each line: a payload, or {"svix-id": …, "payload": …})."""
    from sponsorcast.tracking import import_events, read_events_file

    events = read_events_file(file)
    result = import_events(open_store(), events)
    console.say(
        f"Applied {count(result.applied, 'event')}; {result.duplicate} already applied, "
        f"{result.unmatched} for no known delivery, {result.ignored} of other types."
    )


@handle_errors
def sync(
    campaign_id: Annotated[
        Optional[str],
        typer.Argument(metavar="CAMPAIGN_ID", help="Only this campaign (default: every campaign)."),
    ] = None,
) -> None:
    """Ask Resend (GET /emails/{id}) for the state of deliveries not yet final."""
    import asyncio

    from sponsorcast.errors import ConfigError, WorkFailed
    from sponsorcast.tracking import SyncResult, sync_deliveries
    from sponsorcast.transport import make_transport

    config = load()
    if config.transport != "resend":
        raise ConfigError(
            f'sync asks Resend, but transport.kind is "{config.transport}".',
            hint='Set [transport] kind = "resend" and RESEND_API_KEY.',
        )
    store = open_store(config)

    async def run() -> SyncResult:
        transport = make_transport(config, campaign_id or "sync")
        try:
            return await sync_deliveries(store, transport, campaign_id)  # type: ignore[arg-type]
        finally:
            await transport.aclose()

    result = asyncio.run(run())
    console.say(
        f"Checked {result.checked} deliveries: {result.updated} updated, {result.unchanged} unchanged, "
        f"{result.missing} unknown to Resend, {count(len(result.errors), 'error')}."
    )
    if result.errors:
        raise WorkFailed(
            f"{count(len(result.errors), 'status request')} failed; the first: {result.errors[0]}"
        )


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``sync`` and the ``events`` group."""
    app.command("serve")(serve)
    app.command("sync")(sync)
    app.add_typer(events_app, name="events")
