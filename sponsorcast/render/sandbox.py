"""The template sandbox: Jinja's immutable sandbox, with a bound on what one render may cost.

Jinja's sandbox keeps templates away from Python internals but not from the machine's memory
and time: ``{{ 'a'.ljust(10**9) }}`` or two nested ``range(100000)`` loops are legal Jinja. A
campaign file runs in CI and cron, so one line of it must not take gigabytes or hours. Every
operation that can make a big value from a small one is checked *before* it runs (padding
widths, repetition, powers, format specs, replacements, joins, the filters that pad or
repeat); output is counted as it is produced; loops, calls and macros look at a per-render
clock. A breach raises ``LimitHit``, which rendering reports as a template error naming the
file and line. ``lipsum`` (a text generator with no use in an email) is not available.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from string import Formatter
from typing import Any

from jinja2.nodes import Call, For, Name, Template
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEXT = 1_000_000  # characters of any one value a template makes, and of a rendered part
MAX_ITEMS = 100_000  # items of a repeated list (the same as Jinja's cap on range)
MAX_WIDTH = 10_000  # a padding width, precision or indent
MAX_POW_BITS = 100_000  # size of an integer power
RENDER_SECONDS = 2.0  # one part (subject, text or HTML) for one recipient
LOOP_GUARD = "sc_loop_guard"  # every {% for %} iterates through this global

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


class LimitHit(Exception):
    """A render went past one of the sandbox's limits; the message says which."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line  # the template line, when the traceback cannot tell


class _Clock(threading.local):
    deadline: float = math.inf


_CLOCK = _Clock()


def start_render() -> None:
    """Start the clock of one render in this thread."""
    _CLOCK.deadline = time.monotonic() + RENDER_SECONDS


def tick() -> None:
    """Stop a render that has run past its time."""
    if time.monotonic() > _CLOCK.deadline:
        raise LimitHit(f"the template ran for more than {RENDER_SECONDS:g} s for one recipient")


def _too_big(what: str, size: int, limit: int) -> LimitHit:
    return LimitHit(f"{what} would be {size:,} long, over the limit of {limit:,}")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_width(width: Any, what: str = "a padding width") -> None:
    """Refuse a width (padding, centre, indent, precision) over ``MAX_WIDTH``."""
    n = _int(width)
    if n is not None and n > MAX_WIDTH:
        raise LimitHit(f"{what} of {n:,} is over the limit of {MAX_WIDTH:,}")


def check_repeat(seq: Any, times: Any) -> None:
    """Refuse ``seq * times`` when the result would be too big."""
    n = _int(times)
    if n is None or n <= 0:
        return
    if isinstance(seq, str) and len(seq) * n > MAX_TEXT:
        raise _too_big("a repeated text", len(seq) * n, MAX_TEXT)
    if isinstance(seq, (list, tuple)) and len(seq) * n > MAX_ITEMS:
        raise _too_big("a repeated list", len(seq) * n, MAX_ITEMS)


def check_power(base: Any, exponent: Any) -> None:
    """Refuse an integer power with more than ``MAX_POW_BITS`` bits."""
    b, e = _int(base), _int(exponent)
    if b is None or e is None or e <= 0 or abs(b) <= 1:
        return
    if e * abs(b).bit_length() > MAX_POW_BITS:
        raise LimitHit(f"{b} ** {e} is over the limit of {MAX_POW_BITS:,} bits")


def check_percent(template: str, args: Any) -> None:
    """Refuse ``'%9999999s' % x``: widths and precisions in a %-format."""
    if "%" not in template:
        return
    star = False
    for match in _PERCENT_SPEC.finditer(template):
        for part in match.groups():
            if part == "*":
                star = True
            elif part:
                check_width(int(part), "a width in a %-format")
    if star:
        for value in args if isinstance(args, tuple) else (args,):
            check_width(value, "a width in a %-format")


def check_format(template: str, args: Iterable[Any]) -> None:
    """Refuse ``'{:>999999999}'.format(x)``: widths and precisions in a format spec."""
    if "{" not in template:
        return
    nested = False
    try:
        fields = list(Formatter().parse(template))
    except ValueError:
        return  # str.format raises its own error
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        nested = nested or "{" in spec
        for digits in _DIGITS.findall(spec):
            check_width(int(digits), "a width in a format spec")
    if nested:
        for value in args:
            check_width(value, "a width in a format spec")


def check_replace(text: str, old: Any, new: Any, count: Any = -1) -> None:
    """Refuse a replacement whose result would be too big."""
    if not isinstance(old, str) or not isinstance(new, str) or len(new) <= len(old):
        return
    hits = len(text) + 1 if old == "" else text.count(old)
    n = _int(count)
    if n is not None and n >= 0:
        hits = min(hits, n)
    size = len(text) + hits * (len(new) - len(old))
    if size > MAX_TEXT:
        raise _too_big("a replaced text", size, MAX_TEXT)


def check_join(separator: str, items: list[Any]) -> None:
    """Refuse a join whose result would be too big."""
    size = len(separator) * max(len(items) - 1, 0) + sum(len(str(x)) for x in items)
    if size > MAX_TEXT:
        raise _too_big("a joined text", size, MAX_TEXT)


def _check_str_method(
    owner: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    if name in ("ljust", "rjust", "center", "zfill"):
        check_width(args[0] if args else kwargs.get("width"))
    elif name == "expandtabs":
        size = owner.count("\t") * (_int(args[0] if args else kwargs.get("tabsize", 8)) or 0)
        if size > MAX_TEXT:
            raise _too_big("a text with expanded tabs", size, MAX_TEXT)
    elif name == "format":
        check_format(owner, (*args, *kwargs.values()))
    elif name == "format_map" and args and isinstance(args[0], dict):
        check_format(owner, args[0].values())
    elif name == "replace" and len(args) >= 2:
        check_replace(
            owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1)
        )
    elif name == "join" and args:
        items = list(_bounded(args[0]))
        check_join(owner, items)
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        if longest * len(owner) > MAX_TEXT:
            raise _too_big("a translated text", longest * len(owner), MAX_TEXT)
    return args


def _bounded(items: Iterable[Any]) -> Iterator[Any]:
    for index, item in enumerate(items):
        if index >= MAX_ITEMS:
            raise LimitHit(f"a sequence has more than {MAX_ITEMS:,} items")
        yield item


def loop_guard(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every ``{% for %}`` iterates: the items, with a look at the clock now and then."""
    for index, item in enumerate(iterable):
        if not index & 255:
            tick()
        yield item


def guard_loops(tree: Template) -> Template:
    """Make every ``{% for %}`` of a parsed template iterate through ``loop_guard``."""
    for node in tree.find_all(For):
        node.iter = Call(Name(LOOP_GUARD, "load"), [node.iter], [], None, None)
    return tree


def _filter(original: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    """Wrap a Jinja filter with a check of its arguments (after any context Jinja passes)."""
    skip = 1 if hasattr(original, "jinja_pass_arg") else 0

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(*args[skip:], **kwargs)
        return original(*args, **kwargs)

    return wrapper


def _center(value: Any, width: Any = 80) -> None:
    check_width(width)


def _indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    lines = str(value).count("\n") + 1
    size = (len(width) if isinstance(width, str) else _int(width) or 0) * lines
    if size > MAX_TEXT:
        raise _too_big("an indented text", size, MAX_TEXT)


def _wordwrap(
    value: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    *_: Any,
    **kwargs: Any,
) -> None:
    wrap = kwargs.get("wrapstring", wrapstring)
    if isinstance(wrap, str):
        size = len(wrap) * (len(str(value)) // max(_int(width) or 1, 1) + 1)
        if size > MAX_TEXT:
            raise _too_big("a wrapped text", size, MAX_TEXT)


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent(str(value), tuple(args) or tuple(kwargs.values()))


def _replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
    check_replace(str(value), old, new, -1 if count is None else count)


def _count(value: Any, number: Any, *_: Any, **__: Any) -> None:
    n = _int(number)
    if n is not None and n > MAX_ITEMS:
        raise LimitHit(f"a slice or batch count of {n:,} is over the limit of {MAX_ITEMS:,}")


def _tojson(value: Any, indent: Any = None) -> None:
    check_width(indent, "a JSON indent")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace,
    "slice": _count,
    "batch": _count,
    "tojson": _tojson,
}


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every blow-up checked before it happens."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals.pop("lipsum", None)
        self.globals[LOOP_GUARD] = loop_guard
        for name, check in _FILTER_CHECKS.items():
            self.filters[name] = _filter(self.filters[name], check)
        join = self.filters["join"]
        self.filters["join"] = functools.wraps(join)(
            lambda ctx, value, d="", attribute=None: join(ctx, _joinable(d, value), d, attribute)
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**`` and ``%``, each checked before it runs."""
        if operator == "*":
            check_repeat(left, right)
            check_repeat(right, left)
        elif operator == "**":
            check_power(left, right)
        elif isinstance(left, str):
            check_percent(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call from a template: the clock, and the arguments of text methods."""
        tick()
        target = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_method(owner, getattr(target, "__name__", ""), args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _joinable(separator: Any, value: Any) -> list[Any]:
    items = list(_bounded(value))
    check_join(str(separator), items)
    return items


__all__ = [
    "LOOP_GUARD",
    "MAX_ITEMS",
    "MAX_TEXT",
    "MAX_WIDTH",
    "RENDER_SECONDS",
    "LimitHit",
    "LimitedSandbox",
    "guard_loops",
    "loop_guard",
    "start_render",
    "tick",
]
