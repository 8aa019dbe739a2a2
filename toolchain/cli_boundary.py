"""The error boundary of ``stackc``: every stackc error becomes one line and its documented exit code."""
from __future__ import annotations

import logging
import sys

import click

from . import process_tree
from .errors import ExitCode, StackcError, Terminated


def _on_signal(signum, frame):
    import signal

    # A second signal must not cut the cleanup short: ignore both until the command returns.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    interrupt = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    process_tree.stop_all(interrupt)  # every converter's process group at once: nothing left to wait for
    if frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        # Raised inside the import system's own lock handling, the interrupt came out as a traceback (CI, a SIGINT
        # 0.15 s into a build) and can leave a module lock behind; the build honours it at its next step instead
        # (process_tree.refuse_if_stopping, and StackcGroup.invoke turns the failure it causes into the interrupt).
        return
    raise interrupt()


def _install_signal_handlers():
    """SIGINT and SIGTERM stop the command (``_on_signal``); returns what ``_restore`` puts back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous_hook = sys.unraisablehook

    def quiet_swallowed_interrupt(unraisable):
        # The handler's exception, dropped by Python in an at-fork hook: no traceback for it, since
        # process_tree.refuse_if_stopping raises it again before the next piece of work.
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and process_tree.interrupted():
            return
        previous_hook(unraisable)

    sys.unraisablehook = quiet_swallowed_interrupt
    return previous_hook, {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous) -> None:
    import signal

    if previous is None:
        return
    sys.unraisablehook, handlers = previous
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


class StackcGroup(click.Group):
    """Turns every stackc error into one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context):
        debug = bool(ctx.params.get("debug")) or "--debug" in sys.argv[1:]  # params: main(args) callers too
        as_json = "--json" in [*getattr(ctx, "_protected_args", []), *ctx.args]
        previous = _install_signal_handlers()
        try:
            try:
                result = super().invoke(ctx)
            except Exception as e:  # a failure caused by a swallowed interrupt is the interrupt
                interrupt = process_tree.interrupted()
                if interrupt is not None and not isinstance(e, (click.exceptions.Exit, click.Abort)):
                    raise interrupt() from e
                raise
            interrupt = process_tree.interrupted()
            if interrupt is not None:  # a signal the handler left to the next step, and no step came
                raise interrupt()
            return result
        except StackcError as e:
            if debug:
                raise
            click.echo(f"stackc: error: {e.one_line()}", err=True)
            _print_detail(e)
            if as_json:
                _json_failure(e.one_line(), int(e.exit_code), type(e).__name__, e.details)
            ctx.exit(int(e.exit_code))
        except BrokenPipeError:  # `stackc targets | head`
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt as e:
            terminated = isinstance(e, Terminated)
            click.echo("stackc: terminated" if terminated else "stackc: interrupted", err=True)
            code = ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
            if as_json:
                _json_failure("terminated" if terminated else "interrupted", int(code), type(e).__name__)
            ctx.exit(int(code))
        except click.ClickException as e:  # click's own usage errors (a missing option): exit 2
            if as_json:
                _json_failure(e.format_message(), e.exit_code, type(e).__name__)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:  # a bug: still one line unless --debug
            if debug:
                raise
            detail = " ".join(str(e).split())[:300]
            click.echo(f"stackc: internal error: {type(e).__name__}: {detail} (rerun with --debug for the traceback)", err=True)
            if as_json:
                _json_failure(f"internal error: {type(e).__name__}: {detail}", 1, "InternalError")
            ctx.exit(1)
        finally:
            _restore(previous)
            process_tree.reset()  # a later command in this process (tests, the API) may start children again


def _json_failure(message: str, exit_code: int, error_type: str, details: dict | None = None) -> None:
    """A --json command's failure: one object on stdout (toolchain/schema/cli-output.schema.json)."""
    import json

    click.echo(json.dumps({**(details or {}), "ok": False, "error": message, "exit_code": exit_code,
                           "error_type": error_type}, indent=2))


def _print_detail(error: StackcError) -> None:
    """Multi-line messages (parity tables) keep their first line as the headline, the rest after it."""
    lines = error.message.splitlines()
    if len(lines) > 1:
        click.echo("\n".join(lines[1:]), err=True)


def setup_logging(quiet: bool) -> logging.Logger:
    log = logging.getLogger("stackc")
    log.setLevel(logging.INFO)
    log.propagate = False
    for old in [h for h in log.handlers if getattr(h, "_stackc_console", False)]:
        log.removeHandler(old)  # a second run in one process (tests, API) must not write to a stale stderr
    if not quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("stackc: %(message)s"))
        handler._stackc_console = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    return log
