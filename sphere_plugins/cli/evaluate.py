"""`sphere-plugins evaluate REAL FAKE`: FID/KID with clean-fid's Inception file, else FD/KD on a named network."""

from __future__ import annotations

import argparse
import json
import os
import warnings

from sphere_plugins import jsontext
from sphere_plugins.cli import common

HELP = """examples:
  sphere-plugins evaluate folder:data/real samples/
  sphere-plugins evaluate digits stylegan2:run/model --prior chi2 --n 1000
  sphere-plugins evaluate fashion-mnist:test fmnist-sae/ --n 2000 --metric fd --metric precision --metric recall
  sphere-plugins evaluate real/ fake/ --features digits-cnn --metric fd --json-out fd.json
  sphere-plugins evaluate fashion-mnist:test fmnist16-sae/ --n 10000 --resolution 28
  accelerate launch --num_processes 4 -m sphere_plugins evaluate real/ stylegan2:ffhq.pkl --n 50000 --device cuda
REAL and FAKE are image folders ('folder:PATH' or a path; sub-folders are classes), data specs ('digits',
'fashion-mnist[:test]', 'mnist:PATH'), or a model spec: image i comes from seed --seed + i (the image
`sample --seeds` writes for that seed), drawn with --prior. Without the Inception file
(inception-2015-12-05.pt, see --inception-dir) the distances are FD/KD on an offline network, named in
the output: a classifier trained on REAL's classes (at the compared resolution), else one trained on
scikit-learn's digits.
Sets of different sizes are compared at the smaller one, with a note; --resolution N compares both at NxN.
Scoring a 16x16 model at 28x28 (--resolution 28) charges it for detail it never had: Fashion-MNIST's test
images downsampled to 16x16 score FD-fmnist-cnn 57.6 against themselves that way, the floor of any 16x16 model.
Under `accelerate launch` the processes share the sampling and feature extraction (same seeds, same numbers)."""


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
    parser.add_argument("--seed", type=int, default=0, help="first seed of model sampling (default 0)")
    parser.add_argument("--resolution", type=int, metavar="N", help="compare both sets at NxN (default: their own "
                        "size; the smaller one when they differ)")
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
    if args.resolution is not None and args.resolution < 1:
        raise common.UsageError(f"--resolution must be a positive int, got {args.resolution}")
    if "model" in args.kinds:  # model image i comes from seed --seed + i
        common.check_seed(args.seed + args.n - 1, "--seed + --n - 1")
    if args.json_out is not None:
        _check_json_out(args.json_out)


# A --json-out file evaluate wrote is a JSON list of metric records; any other existing file is the user's.
_RECORD_KEYS = {"metric", "value", "feature_network", "versions", "extra"}
_MAX_JSON_OUT_BYTES = 16 << 20


def _check_json_out(path: str) -> None:
    """--json-out is a new file, or one evaluate wrote (it replaces nothing else)."""
    target = os.path.expanduser(path)
    if not (os.path.exists(target) or os.path.islink(target)):
        return
    if not _is_our_record(target):
        raise common.UsageError(f"--json-out {path!r} exists and is not a record evaluate wrote; name a new file "
                                "(evaluate never replaces a file of yours)")


def _is_our_record(path: str) -> bool:
    if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > _MAX_JSON_OUT_BYTES:
        return False
    try:
        with open(path, "rb") as stream:
            records = json.load(stream)
    except (ValueError, RecursionError, OSError):
        return False
    return isinstance(records, list) and bool(records) and all(isinstance(r, dict) and _RECORD_KEYS <= set(r)
                                                               for r in records)


def _source(text: str, kind: str, role: str, args: argparse.Namespace):
    """REAL data and data specs as an ImageSet (read once: REAL's labels choose an offline network), a FAKE
    folder as its path (read batch by batch), a model as SeededImages."""
    if kind == "data":
        spec = text if common.is_data_spec(text) else f"folder:{text}"
        if role == "fake" and spec.startswith("folder:"):
            return spec
        from sphere_plugins.data import load_images

        return load_images(spec, args.resolution)
    from functools import partial

    from sphere_plugins.generation import seed_images
    from sphere_plugins.metrics import SeededImages

    wrapper = common.load_wrapped_generator(text, args, {})
    draw = partial(_clamped, partial(seed_images, wrapper, prior=args.prior, **args.prior_params))
    return SeededImages(draw, range(args.seed, args.seed + args.n), f"{text} ({args.prior or wrapper.prior} prior)")


def _clamped(draw, seeds):
    return draw(seeds).clamp(-1, 1)


def _join_processes(device: str) -> tuple[str, bool]:
    """Under `accelerate launch`, join its process group (the processes then share the work) and return this
    process's device (`cuda` becomes cuda:LOCAL_RANK) and whether it is the main one, which prints."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device, True
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=torch.device(device).type == "cpu")
    return (str(state.device) if device == "cuda" else device), state.is_main_process


def run(args: argparse.Namespace) -> int:
    from sphere_plugins.files import atomic_write
    from sphere_plugins.metrics.evaluate import evaluate

    args.device, main = _join_processes(args.device)
    real, fake = (_source(text, kind, role, args) for text, kind, role in zip((args.real, args.fake), args.kinds,
                                                                               ("real", "fake")))
    n_real = args.n if args.kinds[0] == "model" else None
    n_fake = args.n if args.kinds[1] == "model" else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = evaluate(real, fake, args.metric or ("fd", "kd"), features=args.features, n_real=n_real,
                           n_fake=n_fake, device=args.device, seed=args.seed, cache_dir=args.cache_dir,
                           inception_dir=args.inception_dir, resolution=args.resolution, distributed=True)
    if not main:
        return 0
    for warning in caught:
        print(f"note: {warning.message}")
    for record in records:
        print(f"{record.metric}: {record.value:.6g}  (real {record.extra['n_real']}, fake {record.extra['n_fake']}; "
              f"features: {record.feature_network})")
    if args.json_out:
        text = jsontext.dumps([r.to_dict() for r in records], indent=2)
        atomic_write(os.path.expanduser(args.json_out), lambda handle: handle.write(text.encode()))
    return 0
