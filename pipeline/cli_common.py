"""The shared vocabulary of the anon-store commands (docs/cli.md): option types whose values
the parser checks (a bad choice is a usage error, exit 2), and the deprecated spellings each
command still accepts (hidden; one note on stderr when used)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from pipeline.cli_choices import (
    check_address,
    check_choice,
    check_choice_list,
    check_device,
    check_sanitize_scheduler,
    choices,
)
from pipeline.cli_progress import deprecated


def checked(check: Callable[[str], str]) -> Callable[[str], str]:
    """A typer parser from a check that raises ValueError: the message becomes a usage error."""

    def parse(value: str) -> str:
        try:
            return check(value)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None

    return parse


def choice(literal: object, what: str, help: str, *names: str) -> Any:
    """A typer.Option taking one of `literal`'s values (checked by the parser)."""
    return typer.Option(
        *names,
        parser=checked(partial(check_choice, literal=literal, what=what)),
        metavar="|".join(choices(literal)),
        help=help,
    )


def choice_list(literal: object, what: str, help: str, allow_empty: bool = False) -> Any:
    """A typer.Option taking comma-separated values of `literal` (checked by the parser)."""
    check = partial(check_choice_list, literal=literal, what=what, allow_empty=allow_empty)
    return typer.Option(
        parser=checked(check),
        metavar=",".join(choices(literal)),
        help=help,
    )


DEVICE_HELP = "auto (CUDA when available) | cpu | cuda | cuda:N"
Device = Annotated[
    str, typer.Option(parser=checked(check_device), metavar="DEVICE", help=DEVICE_HELP)
]
Address = Annotated[
    str | None,
    typer.Option(
        parser=checked(check_address),
        metavar="ADDRESS",
        help="Run the trials on a dask cluster: tcp://host:8786",
    ),
]
SanitizeScheduler = Annotated[
    str,
    typer.Option(
        parser=checked(check_sanitize_scheduler),
        metavar="SCHEDULER",
        help="threads | processes | synchronous | a dask address (tcp://dask-scheduler:8786)",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout")]


def aliased(
    options: Mapping[str, str] | None = None, positional: Sequence[str] = ()
) -> type[TyperCommand]:
    """A command class that still accepts deprecated spellings, rewritten before parsing:

    - ``options``: old option name -> its name now (``--out`` -> ``--output``), also as
      ``--out=VALUE``;
    - ``positional``: options that used to be positional arguments, in order (``--input``):
      a positional value beyond the command's own arguments is passed to them.

    Each use prints one note on stderr when the command has succeeded (not with --quiet; a
    failing command prints only its error line); --help shows only today's names.
    """
    renamed = dict(options or {})

    class AliasedCommand(TyperCommand):
        deprecated_options = renamed
        deprecated_positional = tuple(positional)

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            return super().parse_args(ctx, self._rewrite(ctx, list(args)))

        def _rewrite(self, ctx: Any, args: list[str]) -> list[str]:
            takes_value = set()
            for param in self.params:
                if isinstance(param, TyperOption) and not param.is_flag and not param.count:
                    takes_value.update(param.opts)
            own = sum(isinstance(param, TyperArgument) for param in self.params)
            path = ctx.command_path
            rewritten: list[str] = []
            seen = 0
            i = 0
            while i < len(args):
                token = args[i]
                if token == "--":
                    rewritten += args[i:]
                    break
                if token.startswith("--"):
                    name, eq, value = token.partition("=")
                    if name in renamed:
                        _deprecated(ctx, f"'{path} {name}' is deprecated: use {renamed[name]}")
                        name = renamed[name]
                    rewritten.append(name + eq + value)
                    if not eq and name in takes_value and i + 1 < len(args):
                        rewritten.append(args[i + 1])
                        i += 1
                elif not token.startswith("-") and own <= seen < own + len(positional):
                    option = positional[seen - own]
                    _deprecated(
                        ctx, f"a positional input to '{path}' is deprecated: use {option} VALUE"
                    )
                    rewritten += [option, token]
                    seen += 1
                else:
                    rewritten.append(token)
                    seen += not token.startswith("-")
                i += 1
            return rewritten

    return AliasedCommand


def _deprecated(ctx: Any, message: str) -> None:
    if not ctx.resilient_parsing:
        deprecated(f"note: {message}")
