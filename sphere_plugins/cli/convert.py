"""`sphere-plugins convert`: a network file (an NVIDIA pickle) to this project's safetensors folder."""

from __future__ import annotations

import argparse
import os

from sphere_plugins.cli import common

HELP = """examples:
  sphere-plugins convert stylegan2-ffhq-256x256.pkl ffhq256/
  sphere-plugins convert snapshot.pkl disc/ --option network=D
The pickle is read without running any code it names; the folder (safetensors + config.json) loads
with load_model("ffhq256/") or "stylegan2:ffhq256"."""


def add_parser(commands) -> None:
    parser = commands.add_parser("convert", help="NVIDIA pickle -> safetensors folder, no code executed",
                                 epilog=HELP, description="Convert a model file to the safetensors folder "
                                 "format of the plugin that loads it.")
    parser.add_argument("source", metavar="NVIDIA.pkl", help="the network pickle (or any spec/path)")
    parser.add_argument("out", metavar="OUT", help="folder to write")
    parser.add_argument("--option", action="append", metavar="K=V", help="a load option, e.g. network=G")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="convert weights holding NaN or Inf (refused by default; the folder then loads only "
                             "with allow_nonfinite=True)")
    common.add_common(parser)
    parser.set_defaults(check=check, run=run)


def check(args: argparse.Namespace) -> None:
    if args.source.endswith(".pkl") and not os.path.isfile(args.source):
        raise common.UsageError(f"no file {args.source!r}; expected an NVIDIA network pickle")
    common.check_spec(args.source, "NVIDIA.pkl")
    args.options = common.pairs(args.option, "--option")
    args.out_dir = common.check_out(args.out, [], "OUT")


def run(args: argparse.Namespace) -> int:
    from torch import nn

    from sphere_plugins import load_model
    from sphere_plugins.schemes import save_model
    from sphere_plugins.weights import check_finite

    options = dict(args.options, allow_nonfinite=True) if args.allow_nonfinite else args.options
    model = load_model(args.source, **options)
    if isinstance(model, nn.Module):  # one rule for every plugin's weights, whether or not its loader checks
        check_finite(model.state_dict(), args.source, args.allow_nonfinite)
    scheme = save_model(model, args.out_dir)
    print(f"wrote {args.out_dir} (load with load_model({str(args.out_dir)!r}) or '{scheme}:{args.out_dir}')")
    return 0
