"""The error design: each error's exit code, and the one place that turns errors into output."""

from __future__ import annotations

import pytest

from sponsorcast import errors
from sponsorcast.errors import ExitCode, exit_code_for
from tests.support.project import Project

# the tree in errors.py, read by hand: class -> exit code
EXPECTED = {
    "SponsorcastError": 1,
    "WorkFailed": 1,
    "CampaignPaused": 1,
    "StoreBusy": 1,
    "StoreFull": 1,
    "NothingToSend": 1,
    "BadInput": 2,
    "InputFileError": 2,
    "CampaignFileError": 2,
    "TemplateError": 2,
    "SandboxRefused": 2,
    "TemplateLimitExceeded": 2,
    "LeadsFileError": 2,
    "NotFound": 2,
    "StoreError": 2,
    "StoreReadOnly": 2,
    "WebhookSignatureError": 2,
    "SourceError": 2,
    "ConfigError": 3,
    "CredentialsError": 3,
    "AuthError": 3,
    "TransportError": 1,
    "BatchRejected": 1,
    "OutcomeUnknown": 1,
    "QuotaExceeded": 1,
    "Interrupted": 130,
}


def _make(name: str) -> BaseException:
    cls = getattr(errors, name)
    if name == "BatchRejected":
        return cls("x", status=422, name="n", reason="r")  # type: ignore[no-any-return]
    if name == "QuotaExceeded":
        return cls("x", name="daily_quota_exceeded")  # type: ignore[no-any-return]
    return cls("x")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("name", "code"), EXPECTED.items())
def test_every_error_maps_to_its_documented_code(name: str, code: int) -> None:
    assert int(exit_code_for(_make(name))) == code


def test_the_tree_lists_every_error_class() -> None:
    public = {
        n
        for n, v in vars(errors).items()
        if isinstance(v, type) and issubclass(v, errors.SponsorcastError)
    }
    assert public == set(EXPECTED) | {"Reported"}
    for name in public:
        assert name in (errors.__doc__ or ""), f"{name} is missing from the tree in errors.py"


def test_other_exceptions_and_ctrl_c() -> None:
    assert exit_code_for(KeyboardInterrupt()) == ExitCode.INTERRUPTED
    assert exit_code_for(ValueError("x")) == ExitCode.FAILED
    assert exit_code_for(errors.Reported(ExitCode.BAD_INPUT)) == ExitCode.BAD_INPUT


def _boom(*_a: object, **_k: object) -> None:
    raise RuntimeError("database said no\nSELECT secret FROM everything")


def test_an_unexpected_error_is_one_line_and_exit_1(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sponsorcast.sponsors.list_sponsors", _boom)
    r = project.run("sponsors", "list")
    assert r.exit_code == 1
    assert r.stderr == (
        "Error: Unexpected error: RuntimeError: database said no\n"
        "Hint: Run again with SPONSORCAST_DEBUG=1 for the traceback, and report it.\n"
    )


def test_debug_shows_the_traceback(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sponsorcast.sponsors.list_sponsors", _boom)
    monkeypatch.setenv("SPONSORCAST_DEBUG", "1")
    r = project.run("sponsors", "list", env={"SPONSORCAST_DEBUG": "1"})
    assert r.exit_code == 1
    assert "Traceback (most recent call last)" in r.stderr and "_boom" in r.stderr
