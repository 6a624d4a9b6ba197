"""Files of the project a campaign uses: partials (``{% include "partials/signature.md" %}``)
and layout files (``layouts/acme.html``).

An include is spliced into the body's source when the campaign is loaded for a check, a
preview or a send, before Markdown and templates run, so a partial is Markdown with template
values like the body itself, and what a send snapshots is the body with its partials in it
(a partial edited later cannot change a campaign that has started). A partial is read only
from the project's own ``partials/`` folder: no absolute path, no ``..``, no symlink that
leads out of the project, at most ``MAX_BYTES`` each and ``MAX_DEPTH`` includes deep. A missing
or refused one is a template error naming the campaign file and the line of the include.
A layout file is read the same way from ``layouts/``, and its text goes into the snapshot too.
The files a campaign uses are part of its content hash, so that editing one after a campaign
started, or after it was scheduled, is refused as editing the campaign file is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path, PurePosixPath

from sponsorcast.campaign import CampaignFile
from sponsorcast.errors import TemplateError

FOLDER = "partials"
MAX_BYTES = 256 * 1024
MAX_DEPTH = 5

_INCLUDE = re.compile(r"\{%-?\s*include\s+(?P<q>[\"'])(?P<name>[^\"'\n]*)(?P=q)\s*-?%\}")


def with_partials(campaign: CampaignFile, root: Path) -> CampaignFile:
    """The campaign with every ``{% include "partials/…" %}`` of its body replaced by the file."""
    if "include" not in campaign.body:
        return campaign
    used: list[tuple[str, str]] = []
    body = _expand(
        campaign.body, campaign, root.resolve(), depth=0, base_line=campaign.body_line, used=used
    )
    if not used:
        return campaign
    return dataclasses.replace(campaign, body=body, content_hash=_hash(campaign, used))


def _hash(campaign: CampaignFile, files: list[tuple[str, str]]) -> str:
    """The campaign's content hash with the files it uses folded in: editing a partial or a
    layout is editing the campaign (a started campaign refuses it, run-due refuses it)."""
    digest = hashlib.sha256(campaign.content_hash.encode())
    for name, text in files:
        digest.update(f"\0{name}\0".encode() + text.encode())
    return digest.hexdigest()


def _expand(
    text: str,
    campaign: CampaignFile,
    root: Path,
    *,
    depth: int,
    base_line: int,
    used: list[tuple[str, str]],
) -> str:
    def splice(match: re.Match[str]) -> str:
        line = base_line + text.count("\n", 0, match.start())
        if depth >= MAX_DEPTH:
            raise _error(campaign, line, f"includes are nested more than {MAX_DEPTH} deep")
        name = match.group("name")
        content = read_project_file(root, name, FOLDER, campaign, line)
        used.append((name, content))
        # the partial's own includes report the line of the outermost include
        return _expand(
            content.rstrip("\n"), campaign, root, depth=depth + 1, base_line=line, used=used
        )

    return _INCLUDE.sub(splice, text)


def read_project_file(
    root: Path, name: str, folder: str, campaign: CampaignFile, line: int | None
) -> str:
    """The text of ``name``, a file under the project's ``folder``, or a TemplateError saying why not."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name or pure.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise _error(campaign, line, f"'{name}' must be a path inside the project, like {folder}/x")
    if ".." in pure.parts:
        raise _error(campaign, line, f"'{name}' may not use '..'")
    if not pure.parts or pure.parts[0] != folder:
        raise _error(campaign, line, f"'{name}' must be in the project's {folder}/ folder")
    path = (root / Path(*pure.parts)).resolve()
    if not path.is_relative_to(root / folder):
        raise _error(campaign, line, f"'{name}' leads out of the project's {folder}/ folder")
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise _error(campaign, line, f"'{name}' is not a file")
        if size > MAX_BYTES:
            raise _error(campaign, line, f"'{name}' is larger than {MAX_BYTES // 1024} KB")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(
            campaign, line, f"'{name}' does not exist (looked in {root / folder})"
        ) from None
    except UnicodeDecodeError:
        raise _error(campaign, line, f"'{name}' is not UTF-8 text") from None
    except OSError as exc:
        raise _error(campaign, line, f"'{name}' cannot be read ({exc.strerror or exc})") from None


def _error(campaign: CampaignFile, line: int | None, reason: str) -> TemplateError:
    return TemplateError(f"{reason}.", path=campaign.path, line=line)


LAYOUTS = "layouts"


def with_layout(campaign: CampaignFile, sponsor_layout: str | None, root: Path) -> CampaignFile:
    """The campaign with its layout file's text (the campaign's ``layout:``, else the
    sponsor's), read from the project's ``layouts/`` folder; unchanged without one."""
    name = campaign.layout or sponsor_layout
    if not name:
        return campaign
    line = campaign.key_lines.get("layout") if campaign.layout else None
    text = read_project_file(root.resolve(), name, LAYOUTS, campaign, line)
    return dataclasses.replace(
        campaign, layout_html=text, content_hash=_hash(campaign, [(name, text)])
    )


__all__ = [
    "FOLDER",
    "LAYOUTS",
    "MAX_BYTES",
    "MAX_DEPTH",
    "read_project_file",
    "with_layout",
    "with_partials",
]
