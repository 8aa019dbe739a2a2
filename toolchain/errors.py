"""The exception tree and the exit codes the CLI maps it to.

Domain code raises these; only ``cli.py`` turns them into exit codes and one-line messages.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    USAGE = 2
    BAD_INPUT = 3
    MISSING_DEPENDENCY = 4
    PASS_FAILED = 5
    PARITY_FAILED = 6
    BUNDLE_FAILED = 7
    INCOMPATIBLE = 8
    REGISTRY_UNREACHABLE = 9
    INTERRUPTED = 130
    TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` cleans up; exits 143 instead of 130."""


class StackcError(Exception):
    """Base of every error stackc reports to a user: a message and an optional hint."""

    exit_code = ExitCode.PASS_FAILED
    details: dict | None = None  # set by a --json command: the facts its failure object carries besides the error

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The headline: the message's first line (a parity table after it is detail, not headline)."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else type(self).__name__
        text = " ".join(first.split())
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(StackcError):
    """A command-line value that cannot be used (a bad --shape, an unknown input name)."""

    exit_code = ExitCode.USAGE


class InputError(StackcError):
    """A model, target, recipe or data file that is missing, malformed or inconsistent."""

    exit_code = ExitCode.BAD_INPUT


class MissingDependencyError(StackcError):
    """A Python package a pass or runtime needs is not installed."""

    exit_code = ExitCode.MISSING_DEPENDENCY


class PassError(StackcError):
    """A pass (or converter) failed; the message names the pass and the steps before it."""

    exit_code = ExitCode.PASS_FAILED


class PassCrashed(PassError):
    """An isolated pass's child process died without a result (a signal, an abort)."""


class ParityError(StackcError):
    """An artifact's outputs disagree with the reference beyond its policy."""

    exit_code = ExitCode.PARITY_FAILED

    def __init__(self, message: str, failures: list | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.failures = failures or []


class BundleError(StackcError):
    """A bundle cannot be written, read or verified."""

    exit_code = ExitCode.BUNDLE_FAILED


class IncompatibleError(StackcError):
    """No artifact of a bundle fits the described device (OS, architecture, runtime floors)."""

    exit_code = ExitCode.INCOMPATIBLE


class RegistryError(StackcError):
    """A registry cannot be reached or refuses the request (connection, TLS, HTTP status, credentials).

    What a registry serves is judged as a bundle: content that does not verify is a ``BundleError``.
    """

    exit_code = ExitCode.REGISTRY_UNREACHABLE
