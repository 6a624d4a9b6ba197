"""``doctor``: each check, through the CLI, with the provider faked by respx."""

from __future__ import annotations

import json

import httpx
import respx

from tests.support.project import Project

RESEND_TOML = """\
[transport]
kind = "resend"

[resend]
base_url = "http://127.0.0.1:9/"

[sponsors.default]
name = "Example Events"
from = "Example Events <hello@example.com>"
postal_address = "1 Example Street"
"""


def test_outbox_project_is_healthy(project: Project) -> None:
    r = project.run("doctor")
    assert r.exit_code == 0, r.stdout
    assert "outbox: .eml files in" in r.stdout and "FAIL" not in r.stdout


def test_missing_key_is_named_with_the_fix(project: Project) -> None:
    (project.path / "sponsorcast.toml").write_text(RESEND_TOML)
    r = project.run("doctor", env={"RESEND_API_KEY": ""})
    assert r.exit_code == 3
    assert "RESEND_API_KEY is not set" in r.stdout and "export RESEND_API_KEY" in r.stdout


@respx.mock
def test_provider_refusing_the_key(project: Project) -> None:
    (project.path / "sponsorcast.toml").write_text(RESEND_TOML)
    route = respx.get("http://127.0.0.1:9/domains").mock(
        return_value=httpx.Response(401, json={"name": "missing_api_key"})
    )
    r = project.run("doctor", "--json", env={"RESEND_API_KEY": "re_secret_123"})
    assert r.exit_code == 3
    assert json.loads(r.stdout)[-1] == {
        "check": "provider",
        "ok": False,
        "detail": "http://127.0.0.1:9 refused the key (401)",
        "fix": "Create a key with sending access in the Resend dashboard.",
    }
    assert "re_secret_123" not in r.stdout + r.stderr
    assert route.calls.last.request.headers["user-agent"].startswith("sponsorcast/")


@respx.mock
def test_provider_accepting_the_key(project: Project) -> None:
    (project.path / "sponsorcast.toml").write_text(RESEND_TOML)
    respx.get("http://127.0.0.1:9/domains").mock(
        return_value=httpx.Response(200, json={"data": []})
    )
    r = project.run("doctor", env={"RESEND_API_KEY": "re_x"})
    assert r.exit_code == 0, r.stdout
    assert "accepted the key" in r.stdout


def test_broken_config_is_reported(project: Project) -> None:
    (project.path / "sponsorcast.toml").write_text("[resend]\nbatch_size = 500\n")
    r = project.run("doctor", "--json")
    assert r.exit_code == 3
    [check] = json.loads(r.stdout)
    assert check["check"] == "config" and not check["ok"]
    assert check["detail"].endswith("'resend.batch_size' must be between 1 and 100.")


@respx.mock
def test_sending_only_key_is_fine(project: Project) -> None:
    # GET /domains answers 401 restricted_api_key for a key that may only send
    (project.path / "sponsorcast.toml").write_text(RESEND_TOML)
    respx.get("http://127.0.0.1:9/domains").mock(
        return_value=httpx.Response(
            401,
            json={
                "statusCode": 401,
                "name": "restricted_api_key",
                "message": "This API key is restricted to only send emails",
            },
        )
    )
    r = project.run("doctor", "--json", env={"RESEND_API_KEY": "re_send_only"})
    assert r.exit_code == 0, r.stdout
    assert (
        json.loads(r.stdout)[-1]["detail"]
        == "http://127.0.0.1:9 accepted the key (sending access only)"
    )
