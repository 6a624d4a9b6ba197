"""The Jinja environment campaigns render in: strict variables, readable undefined errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined
from jinja2.filters import do_urlencode
from jinja2.utils import missing
from mdurl import encode

from sponsorcast.render import sandbox

if TYPE_CHECKING:
    from jinja2 import Environment


# What urllib.parse.quote(value, safe="/") leaves alone (Jinja's urlencode of a string).
_URL_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-~/]+")


class NamedVars(dict[str, Any]):
    """A dict of template variables that knows its own name, for clearer undefined errors."""

    __slots__ = ("label",)

    def __init__(self, label: str, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.label = label


class _Undefined(StrictUndefined):
    """StrictUndefined with messages that name the variable as the author wrote it."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if self._undefined_obj is _MISSING:
            return f"undefined variable '{self._undefined_name}'"
        if isinstance(self._undefined_obj, NamedVars):
            return f"undefined variable '{self._undefined_obj.label}.{self._undefined_name}'"
        return f"'{type(self._undefined_obj).__name__}' value has no attribute '{self._undefined_name}'"


def _missing_marker() -> Any:

    return missing


_MISSING = _missing_marker()


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _pct(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def _urlencode(value: Any) -> str:
    """Jinja's ``urlencode``, same output, without its per-byte Python loop for strings."""
    if isinstance(value, str):
        return _URL_UNSAFE.sub(_pct, value)

    return do_urlencode(value)


@lru_cache(maxsize=2)
def jinja_environment(autoescape: bool) -> Environment:
    env = sandbox.LimitedSandbox(
        autoescape=autoescape,
        undefined=_Undefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["urlencode"] = _urlencode
    env.filters[LINK_FILTER] = _link
    return env


LINK_FILTER = "sponsorcast_link"


def _link(value: Any) -> str:
    """A URL made of template values, encoded as Markdown encodes the rest (spaces, non-ASCII)."""
    return encode_url(str(value).strip())


_URL_SAFE = re.compile(r"(?:[A-Za-z0-9;/?:@&=+$,\-_.!~*'()#]|%[0-9A-Fa-f]{2})*")


def encode_url(url: str) -> str:
    """A URL percent-encoded the way Markdown encodes link targets (%XX kept as it is)."""
    if _URL_SAFE.fullmatch(url):  # the usual case, and much cheaper than mdurl
        return url
    return str(encode(url))
