"""`sphere-plugins evaluate REAL FAKE`: FID/KID with clean-fid's Inception file, else FD/KD on a named network."""

from __future__ import annotations

import argparse
import os
import warnings

from sphere_plugins import jsontext
from sphere_plugins.cli import common

HELP = """examples:
  sphere-plugins evaluate folder:data/real samples/
  sphere-plugins evaluate digits stylegan2:run/model --prior chi2 --n 1000
  sphere-plugins evaluate fashion-mnist:test fmnist-sae/ --n 2000 --metric fd --metric precision --metric recall
  sphere-plugins evaluate real/ fake/ --features digits-cnn --metric fd --json-out fd.json
REAL and FAKE are image folders ('folder:PATH' or a path; sub-folders are classes), data specs ('digits',
'fashion-mnist[:test]', 'mnist:PATH'), or a model spec sampled with --prior and --n. Without the Inception file
(inception-2015-12-05.pt, see --inception-dir) the distances are FD/KD on an offline network, named in
the output: a classifier trained on REAL's classes, else one trained on scikit-learn's digits."""


def add_parser(commands) -> None:
    from sphere_plugins.metrics.evaluate import metric_names

    parser = commands.add_parser("evaluate", help="FID/KID (or FD/KD on a named network) of two image sources",
                                 epilog=HELP, description="Distances between the images of REAL and FAKE.")
    parser.add_argument("real", metavar="REAL", help="image folder, data spec, or model spec")
    parser.add_argument("fake", metavar="FAKE", help="image folder, data spec, or model spec")
    parser.add_argument("--prior", help="prior for a model source (default: the wrapper's)")
    parser.add_argument("--prior-param", action="append", metavar="K=V", help="a prior parameter")
    parser.add_argument("--n", type=int, help="images to draw from a model source (required for one)")
    parser.add_argument("--metric", action="append", choices=metric_names(), help="metric(s) (default: fd and kd)")
    parser.add_argument("--features", default="auto",
                        help="'auto' (Inception, else an offline network), 'inception', or an offline network name")
    parser.add_argument("--inception-dir", help="folder holding inception-2015-12-05.pt")
    parser.add_argument("--cache-dir", help="where offline feature networks are cached")
    parser.add_argument("--json-out", help="also write the records to this JSON file")
    parser.add_argument("--seed", type=int, default=0, help="seed of model sampling (default 0)")
    common.add_common(parser)
    parser.set_defaults(check=check, run=run, no_center=False, no_spherize=False, radius=None)


def _kind(source: str, argument: str) -> str:
    if common.is_data_spec(source):
        common.check_data(source, argument)
        return "data"
    if os.path.isdir(os.path.expanduser(source)):
        from sphere_plugins.saving import WRAPPER_CONFIG

        return "model" if os.path.isfile(os.path.join(source, WRAPPER_CONFIG)) else "data"
    common.check_spec(source, argument)
    return "model"


def check(args: argparse.Namespace) -> None:
    args.prior_params = common.pairs(args.prior_param, "--prior-param")
    common.check_prior(args.prior, args.prior_params)
    common.check_seed(args.seed)
    args.kinds = [_kind(args.real, "REAL"), _kind(args.fake, "FAKE")]
    if "model" in args.kinds and (args.n is None or args.n < 2):
        raise common.UsageError("a model source needs --n, the number of images to draw (>= 2)")
    if args.n is not None and args.n < 2:
        raise common.UsageError(f"--n must be an int >= 2, got {args.n}")


def _source(text: str, kind: str, args: argparse.Namespace):
    if kind == "data":
        return text if common.is_data_spec(text) else f"folder:{text}"
    import torch

    wrapper = common.load_wrapped_generator(text, args, {})
    generator = torch.Generator().manual_seed(args.seed)

    def draw(batch: int) -> torch.Tensor:
        return wrapper.sample(batch, args.prior, generator, **args.prior_params).clamp(-1, 1)

    draw.__name__ = f"{text} ({args.prior or wrapper.prior} prior)"
    return draw


def run(args: argparse.Namespace) -> int:
    from sphere_plugins.data import load_images
    from sphere_plugins.metrics.evaluate import evaluate

    real, fake = (_source(text, kind, args) for text, kind in zip((args.real, args.fake), args.kinds))
    if isinstance(real, str):
        real = load_images(real)  # read once: its labels choose the offline network
    n_real = args.n if args.kinds[0] == "model" else None
    n_fake = args.n if args.kinds[1] == "model" else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = evaluate(real, fake, args.metric or ("fd", "kd"), features=args.features, n_real=n_real,
                           n_fake=n_fake, device=args.device, seed=args.seed, cache_dir=args.cache_dir,
                           inception_dir=args.inception_dir)
    for warning in caught:
        print(f"note: {warning.message}")
    for record in records:
        print(f"{record.metric}: {record.value:.6g}  (real {record.extra['n_real']}, fake {record.extra['n_fake']}; "
              f"features: {record.feature_network})")
    if args.json_out:
        with open(args.json_out, "w") as stream:
            stream.write(jsontext.dumps([r.to_dict() for r in records], indent=2))
    return 0
