"""The error boundary of ``stackc``: every stackc error becomes one line and its documented exit code."""
from __future__ import annotations

import logging
import sys

import click

from .errors import ExitCode, StackcError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` cleans up; exits 143 instead of 130."""


def _on_signal(signum, frame):
    import signal

    # A second signal must not cut the cleanup short: ignore both until the command returns.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from . import process_tree

    process_tree.stop_all()  # every converter's process group at once: nothing left to wait for
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _install_signal_handlers() -> dict:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


class StackcGroup(click.Group):
    """Turns every stackc error into one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context):
        import signal

        debug = bool(ctx.params.get("debug")) or "--debug" in sys.argv[1:]  # params: main(args) callers too
        previous = _install_signal_handlers()
        try:
            return super().invoke(ctx)
        except StackcError as e:
            if debug:
                raise
            click.echo(f"stackc: error: {e.one_line()}", err=True)
            _print_detail(e)
            ctx.exit(int(e.exit_code))
        except BrokenPipeError:  # `stackc targets | head`
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt as e:
            from . import process_tree

            process_tree.reset()  # unwound: a later command in this process may start children again
            terminated = isinstance(e, Terminated)
            click.echo("stackc: terminated" if terminated else "stackc: interrupted", err=True)
            ctx.exit(int(ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug: still one line unless --debug
            if debug:
                raise
            detail = " ".join(str(e).split())[:300]
            click.echo(f"stackc: internal error: {type(e).__name__}: {detail} (rerun with --debug for the traceback)", err=True)
            ctx.exit(1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


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
