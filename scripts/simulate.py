"""`ape run simulate [OPTIONS]`: the same as `hedger simulate [OPTIONS]` (see `hedger simulate --help`).

Replays market scenarios on ape-foundry's mainnet fork through the production keeper
and compares hedging policies. With no options: the default scenario set, seed 1.
"""

from __future__ import annotations

import sys

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def cli(args: tuple[str, ...]) -> None:
    from hedger.cli import main
    code = main(["simulate", *args])
    if code:
        sys.exit(code)
