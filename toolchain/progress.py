"""Console progress of a build: one line per pass with its time, a live line while a pass runs on a TTY,
and third-party output (a runtime's ``INFO: Created TensorFlow Lite XNNPACK delegate``) kept off the console.

Passes report to ``reporter`` (``engine/contract.py``); the default does nothing, so the API and tests
see no output unless a caller installs one (``stackc build`` does, unless --quiet or --json).
build.log is untouched: it keeps its own deterministic lines.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path

_PASS_LINE = re.compile(r"^\[([a-z0-9_.]+)\] ")


class Reporter:
    """Does nothing: what the API and library callers get."""

    def started(self, pass_id: str, variant: str | None) -> None:
        pass

    def finished(self, pass_id: str, variant: str | None, seconds: float, ok: bool) -> None:
        pass


reporter: Reporter = Reporter()


class ConsoleReporter(Reporter):
    """``stackc: [optimize] 0.12 s`` per pass; on a TTY a live ``… convert.tflite tflite-int8 42 s`` line."""

    def __init__(self, stream, live: bool):
        self.stream, self.live = stream, live
        self.running: dict[tuple[str, str | None], float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True, name="stackc-progress") if live else None
        if self.ticker:
            self.ticker.start()

    def started(self, pass_id, variant):
        with self.lock:
            self.running[(pass_id, variant)] = time.monotonic()

    def finished(self, pass_id, variant, seconds, ok):
        with self.lock:
            self.running.pop((pass_id, variant), None)
            where = f" {variant}" if variant else ""
            self._write(f"stackc: [{pass_id}]{where} {seconds:.2f} s{'' if ok else ' FAILED'}\n")

    def _write(self, text: str) -> None:
        if self.live:
            text = "\r\x1b[2K" + text  # over the live line
        self.stream.write(text)
        self.stream.flush()

    def _tick(self) -> None:
        while not self.stop.wait(1.0):
            with self.lock:
                if not self.running:
                    continue
                now = time.monotonic()
                parts = [f"{p}{' ' + v if v else ''} {now - t:.0f} s" for (p, v), t in self.running.items()]
                self.stream.write("\r\x1b[2K… " + "; ".join(parts)[:150])
                self.stream.flush()

    def close(self) -> None:
        self.stop.set()
        if self.ticker:
            self.ticker.join(timeout=2)
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


class HidePassChatter(logging.Filter):
    """On the console, a pass's own log lines (start, notes, done) give way to its one progress line;
    build.log keeps them all."""

    def __init__(self, pass_ids):
        super().__init__()
        self.pass_ids = set(pass_ids)

    def filter(self, record: logging.LogRecord) -> bool:
        match = _PASS_LINE.match(record.getMessage())
        return not (match and match.group(1) in self.pass_ids)


@contextlib.contextmanager
def console_progress(stream, log: logging.Logger, chatter_path: Path | None, pass_ids, show: bool = True):
    """Install the console reporter (``show``), hide pass chatter from the console handlers, and send
    what third-party code writes to file descriptor 2 into ``chatter_path`` (not the console)."""
    global reporter
    live = bool(getattr(stream, "isatty", lambda: False)())
    handlers = [h for h in log.handlers if getattr(h, "_stackc_console", False)]
    saved = None
    if chatter_path is not None:
        chatter_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        saved = _redirect_fd2(chatter_path, stream, handlers)
    console = ConsoleReporter(saved[1] if saved and saved[1] is not None else stream, live)
    hide = HidePassChatter(pass_ids)
    for handler in handlers:
        handler.addFilter(hide)
    previous, reporter = reporter, (console if show else reporter)
    try:
        yield console
    finally:
        reporter = previous
        console.close()
        if saved is not None:
            _restore_fd2(saved)
        for handler in handlers:
            handler.removeFilter(hide)


def _redirect_fd2(path: Path, stream, handlers):
    """fd 2 -> ``path``; the console stream keeps writing to the terminal through a duplicate of it."""
    try:
        original = os.dup(2)
    except OSError:
        return None
    uses_fd2 = _fd_of(stream) == 2
    terminal = os.fdopen(os.dup(original), "w", buffering=1, encoding="utf-8", errors="replace") if uses_fd2 else None
    swapped = []
    if terminal is not None:
        for handler in handlers:
            if isinstance(handler, logging.StreamHandler):
                swapped.append((handler, handler.setStream(terminal)))
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, 2)
    os.close(target)
    return original, terminal, swapped, stream if uses_fd2 else None


def _restore_fd2(saved) -> None:
    original, terminal, swapped, _ = saved
    sys.stderr.flush()
    os.dup2(original, 2)
    os.close(original)
    for handler, old in swapped:
        handler.setStream(old)
    if terminal is not None:
        terminal.close()


def _fd_of(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
