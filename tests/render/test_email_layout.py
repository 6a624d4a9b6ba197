"""The email a recipient opens: the layout around every HTML part, inline styles, preheader,
buttons, line breaks, a plain-text part without Markdown, branding and the list headers."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sponsorcast.campaign import load_campaign
from sponsorcast.render import compile_campaign, render_message
from sponsorcast.store.models import Sponsor
from tests.support.project import PROJECT_TOML, REPO, Project

SPONSOR = Sponsor(
    id="acme",
    name="Acme",
    from_address="Acme <events@acme.example>",
    postal_address="1 Acme Way, Springfield",
)
ADA = {
    "id": 1,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "company": "Analytical Engines",
    "title": "CTO",
    "tags": ["enterprise"],
    "fields": {},
}
SAMPLES = [REPO / "campaigns" / n for n in ("welcome.md", "spring-launch.md", "follow-up.yaml")]
STYLED = {"p", "h1", "h2", "h3", "ul", "ol", "li", "a", "img", "blockquote", "table", "td"}


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(html)
    return parser.tags


def message_for(body: str, sponsor: Sponsor = SPONSOR, **front: Any) -> Any:
    campaign = replace(load_campaign(REPO / "campaigns" / "welcome.md"), body=body, **front)
    compiled = compile_campaign(campaign, sponsor)
    return render_message(compiled, ADA, compiled.default_links)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_email_has_the_layout_and_inline_styles(path: Path) -> None:
    compiled = compile_campaign(load_campaign(path), SPONSOR)
    html = render_message(compiled, ADA, compiled.default_links).html
    tags = elements(html)
    assert tags[0] == ("html", {"lang": "en", "dir": "ltr"})
    metas = {a.get("name"): a.get("content") for t, a in tags if t == "meta"}
    assert metas["color-scheme"] == "light dark"
    assert metas["viewport"] == "width=device-width, initial-scale=1"
    container = [a for t, a in tags if t == "table" and "sc-container" in a.get("class", "")]
    assert len(container) == 1 and container[0]["width"] == "600"
    assert "max-width:600px" in container[0]["style"] and container[0]["role"] == "presentation"
    assert all(a.get("role") == "presentation" for t, a in tags if t == "table")
    body_tags = tags[[t for t, _ in tags].index("body") :]
    unstyled = [t for t, a in body_tags if t in STYLED and not a.get("style")]
    assert unstyled == [], unstyled  # everything the body shows is styled inline
    # the preheader comes first in the body, hidden
    first = body_tags[1]
    assert first[0] == "div" and "display:none" in first[1]["style"]
    assert "mso-hide:all" in first[1]["style"]
    # the only <style> block holds media queries, nothing a client needs to show the email
    blocks = re.findall(r"<style>(.*?)</style>", html, flags=re.DOTALL)
    assert len(blocks) == 1 and blocks[0].count("@media") == 2


def test_the_preheader_is_rendered_hidden_and_padded() -> None:
    message = message_for("Hello {{ first_name }}.", preheader="News for {{ company }}")
    hidden = re.search(r'<div style="display:none[^"]*">(.*?)</div>', message.html)
    assert hidden is not None
    assert hidden.group(1).startswith("News for Analytical Engines&#847;&zwnj;&nbsp;")
    assert hidden.group(1).count("&zwnj;") >= 80  # the body does not leak into the preview
    assert "News for" not in message.text
    none = message_for("Hello.", preheader="")
    assert 'style="display:none' not in none.html


def test_a_single_line_break_is_a_line_break_unless_turned_off() -> None:
    body = "Cheers,\nThe Acme team\n"
    kept = message_for(body)
    assert '<p style="margin:0 0 16px 0;">Cheers,<br />\nThe Acme team</p>' in kept.html
    assert kept.text.startswith("Cheers,\nThe Acme team\n")
    joined = message_for(body, line_breaks=False).html.split('class="sc-foot')[0]
    assert "Cheers,\nThe Acme team</p>" in joined and "<br" not in joined


def test_the_text_part_has_no_markdown_left_and_every_url() -> None:
    body = (
        "# Spring launch\n\nHi **{{ first_name }}**, _welcome_ and `code`.\n\n"
        "- [the slides](https://x.test/slides)\n- https://x.test/bare\n\n"
        "1. first\n2. [second](https://x.test/2?c={{ company | urlencode }})\n\n"
        "> a quote\n\n![the booth](https://x.test/booth.png)\n\n"
        "[Book a demo](https://x.test/demo){.button}\n"
    )
    text = message_for(body).text
    assert text.split("\n-- \n")[0] == (
        "Spring launch\n\n"
        "Hi Ada, welcome and code.\n\n"
        "- the slides (https://x.test/slides)\n"
        "- https://x.test/bare\n\n"
        "1. first\n"
        "2. second (https://x.test/2?c=Analytical%20Engines)\n\n"
        "> a quote\n\n"
        "the booth\n\n"
        "Book a demo (https://x.test/demo)\n"
    )
    for syntax in ("**", "](", "{.button}", "`", "# "):
        assert syntax not in text


def test_a_button_is_a_bulletproof_table_in_the_accent_colour() -> None:
    branded = SPONSOR.model_copy(update={"accent_color": "#c2410c"})
    html = message_for("[Book a demo](https://x.test/demo){.button}\n", branded).html
    button = re.search(
        r'<table role="presentation"[^>]*><tr><td style="([^"]*)"><a href="https://x.test/demo" '
        r'class="button" style="([^"]*)">Book a demo</a></td></tr></table>',
        html,
    )
    assert button is not None, html
    assert "background:#c2410c" in button.group(1) and "background:#c2410c" in button.group(2)
    inline = message_for("See [the demo](https://x.test/demo) now.\n", branded).html
    assert 'style="color:#c2410c;' in inline


def test_images_scale_with_the_container_and_keep_their_alt() -> None:
    html = message_for("![Our booth at the fair](https://x.test/booth.png)\n").html
    (image,) = [a for t, a in elements(html) if t == "img"]
    assert image["alt"] == "Our booth at the fair"
    assert "max-width:100%" in image["style"] and "height:auto" in image["style"]


def test_a_logo_and_the_language_come_from_sponsor_and_campaign() -> None:
    branded = SPONSOR.model_copy(update={"logo_url": "https://cdn.acme.example/logo.png"})
    html = message_for("Hallo.", branded, language="de").html
    tags = elements(html)
    assert tags[0] == ("html", {"lang": "de", "dir": "ltr"})
    logos = [a for t, a in tags if t == "img"]
    assert logos[0]["src"] == "https://cdn.acme.example/logo.png" and logos[0]["alt"] == "Acme"
    assert elements(message_for("مرحبا", language="ar").html)[0] == (
        "html",
        {"lang": "ar", "dir": "rtl"},
    )


def test_long_urls_wrap_instead_of_widening_the_email() -> None:
    html = message_for("<https://x.test/" + "a" * 300 + ">\n").html
    card = [a for t, a in elements(html) if t == "td" and "sc-card" in a.get("class", "")]
    assert "overflow-wrap:anywhere" in card[0]["style"]
    link = [a for t, a in elements(html) if t == "a" and a["href"].startswith("https://x.test/aaa")]
    assert "word-break:break-word" in link[0]["style"]


def test_list_headers_in_the_payload_and_the_eml(project: Project) -> None:
    (project.path / "sponsorcast.toml").write_text(
        PROJECT_TOML.replace(
            'postal_address = "1 Example Street, Springfield"',
            'postal_address = "1 Example Street, Springfield"\n'
            'unsubscribe_mailto = "optout@example.com"\naccent_color = "#0f766e"',
        )
        + '\n[tracking]\npublic_url = "https://t.example.com"\n',
        encoding="utf-8",
    )
    (project.path / "leads.csv").write_text("email,name\nada@example.com,Ada\n", encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    (project.path / "spring.md").write_text(
        "---\nname: Spring launch\nsubject: Hi\npreheader: News\n---\nHello.\n", encoding="utf-8"
    )
    result = project.run("send", "spring.md", "--yes", env={"SPONSORCAST_SECRET": "s" * 32})
    assert result.exit_code == 0, result.stderr
    (eml,) = (project.path / "outbox" / "spring").iterdir()
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["List-Id"] == '"Spring launch (Example Events)" <spring.default.example.com>'
    unsubscribe = str(message["List-Unsubscribe"])
    assert unsubscribe.startswith("<https://t.example.com/u/")
    assert unsubscribe.endswith(", <mailto:optout@example.com?subject=unsubscribe>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",))
    assert html is not None and "#0f766e" not in str(html.get_content())  # no link in the body


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("accent_color", "red", "it must be a colour like #1a56db"),
        ("accent_color", '#fff" onload="x', "it must be a colour like #1a56db"),
        ("logo_url", "http://acme.example/logo.png", "it must be an https:// image URL"),
        ("logo_url", "https://acme.example/a logo.png", "it must be an https:// image URL"),
        ("unsubscribe_mailto", "a@x.example, b@y.example", "it must be one address"),
    ],
)
def test_branding_that_could_break_the_html_is_refused(
    project: Project, key: str, value: str, says: str
) -> None:
    result = project.run(
        "sponsors", "add", "acme", "--name", "Acme", f"--{key.replace('_', '-')}", value
    )
    assert result.exit_code == 2
    assert says in result.stderr
    assert project.run("sponsors", "show", "acme").exit_code == 2  # not created
    toml = PROJECT_TOML + f"{key} = {json.dumps(value)}\n"
    (project.path / "sponsorcast.toml").write_text(toml, encoding="utf-8")
    bad_config = project.run("sponsors", "list")
    assert bad_config.exit_code == 3 and says in bad_config.stderr


def test_sponsors_add_sets_and_clears_branding(project: Project) -> None:
    r = project.run(
        "sponsors", "add", "acme", "--name", "Acme", "--accent-color", "#0F766E",
        "--logo-url", "https://cdn.acme.example/l.png",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    shown = project.run("sponsors", "show", "acme", "--json").stdout
    assert (
        '"accent_color": "#0F766E"' in shown
        and '"logo_url": "https://cdn.acme.example/l.png"' in shown
    )
    assert project.run("sponsors", "add", "acme", "--logo-url", "").exit_code == 0
    assert '"logo_url": null' in project.run("sponsors", "show", "acme", "--json").stdout
    assert '"accent_color": "#0F766E"' in project.run("sponsors", "show", "acme", "--json").stdout


def test_render_open_writes_the_preview_and_opens_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    (project.path / "leads.csv").write_text("email,name\nada@example.com,Ada\n", encoding="utf-8")
    assert project.run("leads", "import", "leads.csv").exit_code == 0
    shutil.copy(REPO / "campaigns" / "welcome.md", project.path / "welcome.md")
    opened: list[str] = []

    def fake_open(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    result = project.run("render", "welcome.md", "--open")
    assert result.exit_code == 0, result.stderr
    (url,) = opened
    path = Path(url.removeprefix("file://"))
    assert path.name.startswith("sponsorcast-welcome-") and path.suffix == ".html"
    assert path.read_text(encoding="utf-8").startswith('<!DOCTYPE html>\n<html lang="en"')
    assert f"(written to {path})" in result.stdout
    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # a machine without a browser
    headless = project.run("render", "welcome.md", "--open")
    assert headless.exit_code == 0
    assert headless.stderr.startswith("Warning: No browser could be started here; open /")
    both = project.run("render", "welcome.md", "--open", "--check")
    assert both.exit_code == 2
    path.unlink()


class _Tracking:
    """Links as tracking makes them: every click through a redirect, a signed unsubscribe URL."""

    unsubscribe_url = "https://t.test/u/TOKEN"
    pixel_url = None

    def click(self, url: str) -> str:
        return "https://t.test/c/" + str(len(url))


def test_the_text_part_tracks_the_same_links_as_the_html_part() -> None:
    body = (
        "See [the slides](https://x.test/slides) and <https://x.test/bare>.\n\n"
        "[Unsubscribe]({{ unsubscribe_url }})\n"
    )
    campaign = replace(load_campaign(REPO / "campaigns" / "welcome.md"), body=body)
    compiled = compile_campaign(campaign, SPONSOR)
    message = render_message(compiled, ADA, _Tracking())
    assert message.text.split("\n-- \n")[0] == (
        "See the slides (https://t.test/c/21) and https://t.test/c/19.\n\n"
        "Unsubscribe (https://t.test/u/TOKEN)\n"
    )
    assert message.text.endswith("Unsubscribe: https://t.test/u/TOKEN\n")
    assert 'href="https://t.test/c/21"' in message.html


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_golden_sample_emails_with_the_layout(path: Path) -> None:
    compiled = compile_campaign(load_campaign(path), SPONSOR)
    message = render_message(compiled, ADA, compiled.default_links)
    for suffix, actual in ((".html", message.html), (".text.txt", message.text)):
        golden = REPO / "tests" / "data" / "golden" / f"sample-{path.stem}{suffix}"
        if os.environ.get("SPONSORCAST_UPDATE_GOLDEN") == "1":
            golden.write_text(actual, encoding="utf-8")
        assert actual == golden.read_text(encoding="utf-8")


def test_list_id_folds_control_characters_of_a_campaign_name() -> None:
    campaign = replace(
        load_campaign(REPO / "campaigns" / "welcome.md"), name='Evil\x1b"Name"\r\nBcc: x@y.z'
    )
    list_id = compile_campaign(campaign, SPONSOR).list_id
    assert list_id == '"Evil \\"Name\\" Bcc: x@y.z (Acme)" <welcome.acme.acme.example>'
    assert list_id.isprintable()
