"""Building the ``bullbridge`` commands on click: one helper per kind of thing a command has.

:func:`command` makes a click command whose body is a plain ``run(args) -> int`` (``args``
holds every parameter by name), configures logging from the process options, and runs the
body through :func:`bullbridge.cli.failures.run_command` - so every command fails one way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import click

from bullbridge.cli.failures import debug_requested, run_command
from bullbridge.cli.logs import FORMATS, configure, level_name

#: Commands that log at INFO unless told otherwise (a long-running process says what it does).
INFO_BY_DEFAULT = ("worker",)
#: ``-h`` as well as ``--help``, and help as wide as the terminal (up to 100 columns).
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: Where the process options land, whichever level of the command line gave them.
PROCESS = "bullbridge.process"
#: The raw command line, for commands that re-run themselves (worker --processes).
ARGV = "bullbridge.argv"


class Checked(click.ParamType[Any]):
    """A parameter type from a function that converts a string or raises ValueError (or
    argparse's ArgumentTypeError, or a ConfigurationError): its message is the usage error."""

    def __init__(self, convert: Callable[[str], Any], name: str | None = None) -> None:
        self.convert_text = convert
        self.name = name or convert.__name__

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.convert_text(value)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            self.fail(str(exc), param, ctx)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value not in (None, False):
        ctx.meta.setdefault(PROCESS, {})[param.name] = value


def process_options() -> list[click.Parameter]:
    """``--log-level``, ``--log-format``, ``--debug``: on the root and on every command, so they
    may come before or after the command's name (the last one given wins)."""
    return [
        click.Option(
            ["--log-level"],
            type=Checked(level_name, "LEVEL"),
            metavar="LEVEL",
            expose_value=False,
            callback=_remember,
            help="DEBUG, INFO, WARNING, ERROR (default: INFO for worker, WARNING otherwise)",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(FORMATS),
            expose_value=False,
            callback=_remember,
            help="text (default) or json: one object per line",
        ),
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="print a traceback with errors (also BULLBRIDGE_DEBUG=1)",
        ),
    ]


def group(parent: click.Group, name: str, *, help: str, description: str | None = None) -> click.Group:
    """A command with subcommands (``queue``, ``schedule``, ``migrate``, ``interop``)."""
    child = click.Group(
        name,
        help=description or help,
        short_help=help,
        params=process_options(),
        context_settings=CONTEXT,
        epilog="exit codes: see bullbridge --help",
        no_args_is_help=False,
    )
    parent.add_command(child)
    return child


def command(
    parent: click.Group,
    name: str,
    run: Callable[[argparse.Namespace], int],
    params: Sequence[click.Parameter],
    *,
    help: str,
    description: str | None = None,
    hidden: bool = False,
    fixed: dict[str, Any] | None = None,
) -> click.Command:
    """A command whose body is ``run(args)``; ``args`` holds every parameter by name (lists for
    repeated ones), plus ``fixed`` values (``action="retry"``), ``argv`` and ``debug``."""

    def callback(**values: Any) -> int:
        ctx = click.get_current_context()
        return _invoke(ctx, run, {**(fixed or {}), **values})

    cmd = click.Command(
        name,
        callback=callback,
        params=[*params, *process_options()],
        help=description or help,
        short_help=help,
        hidden=hidden,
        context_settings=CONTEXT,
        epilog="exit codes: see bullbridge --help",
    )
    parent.add_command(cmd)
    return cmd


def option(*decls: str, **attrs: Any) -> click.Option:
    return click.Option(list(decls), **attrs)


def argument(name: str, **attrs: Any) -> click.Argument:
    return click.Argument([name], **attrs)


def percentile_sample_option() -> click.Option:
    """``--sample N``: how many of the newest finished jobs the stats' percentiles come from
    (``stats`` and ``dashboard`` share it, so both default to the same sample)."""
    return option(
        "--sample",
        type=int,
        default=1000,
        metavar="N",
        help="newest finished jobs the percentiles come from (default 1000)",
    )


def connection_options(url_help: str | None = None) -> list[click.Parameter]:
    """``--redis`` and ``--prefix``, shared by the commands that read a deployment."""
    return [
        option(
            "--redis",
            metavar="URL",
            default=None,
            help=url_help or "Redis URL (default: BULLBRIDGE_REDIS_URL / REDIS_URL, else redis://127.0.0.1:6379)",
        ),
        option("--prefix", default="bull", show_default=False, help="BullMQ key prefix (default: bull)"),
    ]


def _invoke(ctx: click.Context, run: Callable[[argparse.Namespace], int], values: dict[str, Any]) -> int:
    process = ctx.meta.get(PROCESS, {})
    raw: list[str] = ctx.meta.get(ARGV, [])
    name = ctx.command_path.removeprefix(ctx.find_root().info_name or "bullbridge").strip()
    top = name.split()[0] if name else ""
    args = argparse.Namespace(
        **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()},
        command=top,
        argv=raw,
        debug=bool(process.get("debug")) or debug_requested(raw),
        log_level=process.get("log_level"),
        log_format=process.get("log_format"),
    )
    level = args.log_level or ("INFO" if top in INFO_BY_DEFAULT else "WARNING")
    configure(level, args.log_format or "text")
    return run_command(name, lambda: int(run(args)), debug=args.debug)
