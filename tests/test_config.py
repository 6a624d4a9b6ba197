"""Configuration: precedence, validation naming the key, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from sponsorcast.config import load_config
from sponsorcast.errors import ConfigError
from tests.support.project import REPO, Project

ROOT = REPO


def test_example_file_is_valid_and_complete(tmp_path: Path) -> None:
    config = load_config(ROOT / "sponsorcast.toml.example", env={})
    assert config.transport == "outbox" and config.resend.rate_limit is None
    assert config.resend.batch_size == 100 and config.lease_seconds == 300
    assert [s.id for s in config.sponsors] == ["default"]


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = tmp_path / "sponsorcast.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///from-file.db"\n[resend]\nbase_url = "http://file.test"\n'
    )
    assert load_config(path, env={}).store_url == f"sqlite:///{tmp_path}/from-file.db"
    env = {"SPONSORCAST_DB": "sqlite:///env.db", "RESEND_BASE_URL": "http://env.test"}
    config = load_config(path, env=env)
    assert (config.store_url, config.resend.base_url) == ("sqlite:///env.db", "http://env.test")
    assert (
        load_config(path, env=env, store_url="sqlite:///flag.db").store_url == "sqlite:///flag.db"
    )


def test_sponsorcast_config_env_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[transport]\nkind = "outbox"\n')
    assert load_config(None, env={"SPONSORCAST_CONFIG": str(path)}).transport == "outbox"
    with pytest.raises(
        ConfigError, match=r"SPONSORCAST_CONFIG names .*missing\.toml, which does not exist"
    ):
        load_config(None, env={"SPONSORCAST_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[resend]\nbatchsize = 10\n", "unknown key 'resend.batchsize'"),
        ("[resend]\nbatch_size = 101\n", "'resend.batch_size' must be between 1 and 100"),
        (
            '[resend]\nrate_limit = "fast"\n',
            "'resend.rate_limit' must be \"auto\" or a positive number",
        ),
        ("[resend]\ntimeout = true\n", "'resend.timeout' has the wrong type"),
        ('[transport]\nkind = "smtp"\n', '\'transport.kind\' must be "resend" or "outbox"'),
        ("[trackng]\n", "unknown key 'trackng'"),
        ('[sponsors.acme]\nfrom_address = "x"\n', "unknown key 'sponsors.acme.from_address'"),
        ('timezone = "Mars/Olympus"\n', "'timezone' 'Mars/Olympus' is not a known time zone"),
        ("[store\n", "is not valid TOML"),
    ],
)
def test_bad_config_names_the_key_and_exits_3(project: Project, text: str, message: str) -> None:
    (project.path / "sponsorcast.toml").write_text(text)
    r = project.run("sponsors", "list")
    assert r.exit_code == 3
    assert message in r.stderr
    assert r.stderr.startswith("Error: sponsorcast.toml")


def test_api_key_comes_from_env_and_never_shows(tmp_path: Path) -> None:
    config = load_config(None, env={"RESEND_API_KEY": "re_very_secret"})
    assert config.secrets.resend_api_key == "re_very_secret"
    assert "re_very_secret" not in repr(config)


def test_postgres_scheme_alias(tmp_path: Path) -> None:
    config = load_config(None, env={"SPONSORCAST_DB": "postgres://u@127.0.0.1:5432/db"})
    assert config.store_url == "postgresql://u@127.0.0.1:5432/db"
