"""The key check's request made by a process of its own, started before ``send`` imports.

The request that asks the provider whether it takes the key opens the first window of the
rate limit: every later window is counted from it, so the sooner it leaves, the sooner the
run ends. Made by the opening's key thread (``send.opening``), it would first import httpx
and build a client, on the CPU the render check needs, after the check's processes have
been forked. So ``send`` starts a helper process at once (``probe_worker``): on a CPU idle
while ``send`` imports, it imports httpx, builds its client and says it is ready, then waits.

``send`` books the question's rate slot itself (the budget lives in the store it has open)
once the campaign is planned, just before the check forks, tells the helper to go, and its
key thread reads the answer. Nothing leaves before ``go()``, so a bad campaign file costs no
request. When the helper cannot help (it died, it could not start), ``ready()`` is False
and the key thread asks itself, as it would without one.

Lines on the helper's stdout, one JSON object each: ``{"ready": true}``, then
``{"answer": {...}}`` (a ``KeyAnswer``), or ``{"error": "..."}`` at any point. The API key
reaches the helper in its environment, never on its command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from sponsorcast.errors import debug_requested

if TYPE_CHECKING:
    from sponsorcast.config import Config
    from sponsorcast.transport.keycheck import KeyAnswer

_WORKER = "from sponsorcast.send.keyprobe import probe_worker; probe_worker()"
LINE_MOST = 65_536  # bytes of one line from the helper (an answer is a few hundred)


class KeyProbe:
    """The parent's end of a helper process that asks the provider about the key."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._gone = False  # the helper can no longer help (it died, or said why not)
        self._ready: bool | None = None

    def ready(self, *, wait: bool = True) -> bool:
        """True when the helper can ask at once; False when it cannot help (ask yourself).
        Without ``wait``, False also while it is still starting (where the pipe cannot be
        polled, as on Windows, always then)."""
        if self._ready is None:
            if not wait and not self._readable():
                return False
            line = self._line()
            self._ready = line is not None and line.get("ready") is True
        return self._ready

    def _readable(self) -> bool:
        """Has the helper written a line that ``_line`` would read without waiting?"""
        stdout = self._proc.stdout
        if stdout is None or os.name != "posix":
            return False
        readable, _, _ = select.select([stdout], [], [], 0)
        return bool(readable)

    def go(self) -> None:
        """The question's slot is taken: ask now."""
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(b"go\n")
            stdin.flush()
        except OSError:  # it died: answer() is None, as for a lost answer
            self._gone = True

    def answer(self) -> KeyAnswer | None:
        """What the provider said; None when the helper died after ``go()`` (as a lost
        answer: the run goes on)."""
        from sponsorcast.transport.keycheck import KeyAnswer  # on use: keeps start-up fast

        line = self._line()
        data = line.get("answer") if line is not None else None
        if not isinstance(data, dict):
            return None
        try:
            return KeyAnswer(**data)
        except TypeError:
            return None

    @property
    def exit_code(self) -> int | None:
        """The helper's exit status, None while it runs."""
        return self._proc.poll()

    def close(self) -> None:
        """End the helper: it stops at once if ``go()`` never came (stdin closes)."""
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def _line(self) -> dict[str, Any] | None:
        if self._gone or self._proc.stdout is None:
            return None
        raw = self._proc.stdout.readline(LINE_MOST)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or "error" in data:
            self._gone = True
            return None
        return data


def start_probe(config: Config) -> KeyProbe | None:
    """A helper for ``config``'s key check; None when the run will not ask one (outbox, no
    key)."""
    from sponsorcast.transport import api_key_problem  # on use: keeps start-up fast

    key = config.secrets.resend_api_key
    if config.transport != "resend" or not key or not key.strip():
        return None
    if api_key_problem(key.strip()) is not None:
        return None  # refused before any request, by the transport
    job = {
        "base_url": config.resend.base_url,
        "timeout": config.resend.timeout,
    }
    try:
        proc = subprocess.Popen(
            # -P: the project folder (the cwd) is not put on sys.path: no file of its runs
            [sys.executable, "-P", "-c", _WORKER, json.dumps(job)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug_requested() else subprocess.DEVNULL,
            env={**os.environ, "RESEND_API_KEY": key},
        )
    except OSError:
        return None  # no process to spare: the opening asks itself
    return KeyProbe(proc)


@contextlib.contextmanager
def key_probe(config: Config, *, wanted: bool) -> Iterator[KeyProbe | None]:
    """``start_probe`` when ``wanted``, closed on the way out whatever happened."""
    probe = start_probe(config) if wanted else None
    try:
        yield probe
    finally:
        if probe is not None:
            probe.close()


def probe_worker() -> None:
    """Entry point of the helper: the job as JSON in argv[1], lines on stdout."""
    out = sys.stdout
    try:
        job = json.loads(sys.argv[1])
        _probe(job, sys.stdin, out)
    except BaseException as exc:  # told to the parent, which asks itself
        _say(out, {"error": type(exc).__name__})


def _probe(job: dict[str, Any], stdin: IO[str], out: IO[str]) -> None:
    import httpx  # the helper's reason to exist: imported here, beside the parent's imports

    from sponsorcast.transport.keycheck import KEY_CHECK_TIMEOUT, ask_provider

    key = os.environ.get("RESEND_API_KEY", "").strip()
    base_url = str(job["base_url"])
    timeout = min(float(job["timeout"]), KEY_CHECK_TIMEOUT)
    with httpx.Client(timeout=timeout) as client:
        _say(out, {"ready": True})
        if stdin.readline().strip() != "go":
            return  # the parent left (a bad file, a resumed campaign): nothing asked
        answer = ask_provider(base_url, key, timeout, client=client)
    _say(out, {"answer": asdict(answer)})


def _say(out: IO[str], data: dict[str, Any]) -> None:
    out.write(json.dumps(data) + "\n")
    out.flush()


__all__ = ["KeyProbe", "key_probe", "probe_worker", "start_probe"]
