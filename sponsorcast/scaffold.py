"""``init``: lay out a new sponsorcast directory from the packaged samples."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sponsorcast.config import load_config
from sponsorcast.errors import BadInput
from sponsorcast.store import open_from_config

SAMPLES = {
    "sponsorcast.toml": "sponsorcast.toml",
    "campaigns/welcome.md": "welcome.md",
    "leads.csv": "leads.csv",
}


@dataclass(frozen=True)
class InitResult:
    """What ``init`` did with each file."""

    written: list[Path]
    kept: list[Path]
    store_url: str


def init_project(directory: Path) -> InitResult:
    """Write the sample files that do not exist yet (never overwriting) and create the store."""

    if directory.exists() and not directory.is_dir():
        raise BadInput(f"{directory} exists and is not a directory.")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    kept: list[Path] = []
    package = resources.files("sponsorcast") / "samples"
    for target, sample in SAMPLES.items():
        path = directory / target
        if path.exists():
            kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((package / sample).read_text(encoding="utf-8"), encoding="utf-8")
        written.append(path)
    config = load_config(directory / "sponsorcast.toml")
    store = open_from_config(config)
    store.dispose()
    return InitResult(written=written, kept=kept, store_url=config.store_url)
