"""A settable clock for code that asks ``utcnow()``: tests move it instead of sleeping."""

from __future__ import annotations

from datetime import datetime
from types import ModuleType

import pytest


class Clock:
    """A settable ``utcnow``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def install(self, monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> Clock:
        """Be the ``utcnow`` of these modules for the test; returns itself."""
        for module in modules:
            monkeypatch.setattr(module, "utcnow", self)
        return self
