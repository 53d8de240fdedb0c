"""The `sphere-plugins` command line: one small module per subcommand; each parses, checks its arguments
before any work (exit 2, one line), and calls the library."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from sphere_plugins.cli import convert, evaluate, finetune, interpolate, listing, sample
from sphere_plugins.cli.common import ALLOW_DOWNLOAD_ENV, Parser, UsageError
from sphere_plugins.process_group import leave_process_group

SUBCOMMANDS = (listing, sample, interpolate, evaluate, finetune, convert)
EXAMPLES = """examples:
  sphere-plugins list
  sphere-plugins sample stylegan2:ffhq.pkl --prior chi2 --seeds 0-15 --out samples/
  sphere-plugins interpolate diffusers:tiny-ddpm --seeds 1,2,3 --steps 8 --out path/
  sphere-plugins evaluate folder:real/ samples/
  sphere-plugins finetune diffusers:tiny-vae --data digits --steps 400 --out vae-sae/
  sphere-plugins convert network.pkl converted/
Run `sphere-plugins COMMAND --help` for each command's options and examples."""


def build_parser() -> Parser:
    parser = Parser(prog="sphere-plugins", description="Put the latents of generative models on a sphere: "
                    "list plugins, sample, interpolate, evaluate, fine-tune, convert.", epilog=EXAMPLES)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 1 failed while working, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "allow_download", False):
        os.environ[ALLOW_DOWNLOAD_ENV] = "1"
    try:
        args.check(args)
    except UsageError as error:
        sys.stderr.write(f"sphere-plugins {args.command}: error: {error}\n")
        return 2
    try:
        return args.run(args) or 0
    except (ValueError, OSError, KeyError, RuntimeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        sys.stderr.write(f"sphere-plugins {args.command}: error: {message}\n")
        return 1
    finally:
        leave_process_group()
