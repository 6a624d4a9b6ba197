"""Every sample email, and one using every Markdown feature, passes a real HTML validator.

html-validate (npm) runs with the repository's ``.htmlvalidate.json``: its recommended rules,
minus four that email needs broken (inline styles, table attributes Outlook reads, implied
``<tbody>``, and ``<br />``; docs/emails.md says why). ``scripts/test.sh`` installs it into
``.cache/html-validate``; without it the test skips, and fails when ``CI`` is set.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from sponsorcast.campaign import load_campaign
from sponsorcast.render import compile_campaign, render_message
from sponsorcast.store.models import Sponsor
from tests.support.pg import ci_is_set
from tests.support.project import REPO

VALIDATOR = REPO / ".cache" / "html-validate" / "node_modules" / ".bin" / "html-validate"
SPONSOR = Sponsor(
    id="acme",
    name="Acme",
    from_address="Acme <events@acme.example>",
    postal_address="1 Acme Way, Springfield",
    logo_url="https://cdn.acme.example/logo.png",
    accent_color="#0f766e",
)
LEAD = {
    "id": 1,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "company": "Analytical <Engines> & Co",
    "title": "CTO",
    "tags": ["enterprise"],
    "fields": {},
}
EVERYTHING = """\
# Spring launch

Hi **{{ first_name }}**, _welcome_ and `code`.

- [the slides](https://x.test/slides)
- <https://x.test/bare>

1. first
2. second

> a quote

![the booth](https://x.test/booth.png)

| Day | Talk |
| --- | ---- |
| Mon | Engines |

```
code block
```

---

[Book a demo](https://x.test/demo){.button}

Cheers,
The team
"""


def _validator() -> str:
    found = os.environ.get("SPONSORCAST_HTML_VALIDATE") or (
        str(VALIDATOR) if VALIDATOR.exists() else ""
    )
    if not found:
        message = "html-validate is not installed (scripts/test.sh installs it with npm)."
        if ci_is_set():
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.slow
def test_the_emails_pass_html_validate(tmp_path: Path) -> None:
    validator = _validator()
    files = []
    for name in ("welcome.md", "spring-launch.md", "follow-up.yaml"):
        compiled = compile_campaign(load_campaign(REPO / "campaigns" / name), SPONSOR)
        files.append((name, render_message(compiled, LEAD, compiled.default_links).html))
    welcome = load_campaign(REPO / "campaigns" / "welcome.md")
    everything = compile_campaign(replace(welcome, body=EVERYTHING), SPONSOR)
    files.append(("everything", render_message(everything, LEAD, everything.default_links).html))
    paths = []
    for name, html in files:
        path = tmp_path / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        paths.append(str(path))
    result = subprocess.run(
        [validator, "--config", str(REPO / ".htmlvalidate.json"), *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
