"""What every subcommand shares: one-line usage errors, argument parsers for seeds and k=v pairs, checks
that run before any work, and the JSON record written beside the outputs."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from sphere_plugins import jsontext
from sphere_plugins.downloads import ALLOW_DOWNLOAD_ENV
from sphere_plugins.files import atomic_write
from sphere_plugins.generation import MAX_SEED, SEED_CONVENTIONS
from sphere_plugins.plugins import plugin_distributions
from sphere_plugins.records import installed_versions
from sphere_plugins.schemes import infer_scheme, list_schemes, names_a_path, spec_value

DATA_SPECS = ("digits",)
DATA_HELP = "'digits', 'fashion-mnist[:PATH][:train|:test]', 'mnist:PATH[:train|:test]' or 'folder:PATH'"


class UsageError(Exception):
    """A bad argument found before any work: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and examples kept as written."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # argparse's own is usage + message over several lines
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device to run on (default: cpu)")
    parser.add_argument("--allow-download", action="store_true",
                        help=f"let the libraries download missing weights themselves (or set {ALLOW_DOWNLOAD_ENV}=1)")


def pairs(items: list[str] | None, argument: str) -> dict[str, Any]:
    """['k=v', ...] -> {k: v}, numbers parsed."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, equals, text = item.partition("=")
        if not equals or not key.isidentifier():
            raise UsageError(f"{argument} takes KEY=VALUE with KEY a name, got {item!r}")
        result[key] = spec_value(text)
    return result


MAX_SEEDS = 1_000_000  # per run: one PNG each


def seeds(text: str, at_least: int = 1) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; every seed in 0..MAX_SEED and at most MAX_SEEDS of them, counted before the
    list is built."""
    ranges: list[tuple[int, int]] = []
    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        for part in filter(None, text.split(",")):
            low, dash, high = part.partition("-")
            first, last = int(low), int(high) if dash else int(low)
            if first < 0 or last < first:
                raise ValueError
            ranges.append((first, last))
    except ValueError:
        raise UsageError(f"--seeds takes non-negative ints and ranges such as '0-15' or '1,5,9', got {shown!r}") \
            from None
    largest = max((last for _, last in ranges), default=0)
    if largest > MAX_SEED:
        raise UsageError(f"--seeds: seed {largest} is too large; seeds are ints in 0..{MAX_SEED}")
    count = sum(last - first + 1 for first, last in ranges)
    if count > MAX_SEEDS:
        raise UsageError(f"--seeds {shown!r} names {count} seeds; at most {MAX_SEEDS} per run (split it into runs)")
    if count < at_least:
        raise UsageError(f"--seeds needs at least {at_least} seed(s), got {shown!r}")
    return [seed for first, last in ranges for seed in range(first, last + 1)]


def check_seed(value: int, argument: str = "--seed") -> None:
    """A seed torch and numpy both take: an int in 0..MAX_SEED."""
    if not 0 <= value <= MAX_SEED:
        raise UsageError(f"{argument} must be an int in 0..{MAX_SEED}, got {value}")


def check_prior(name: str | None, params: dict[str, Any]) -> None:
    from sphere_plugins.priors import check_prior_params, get_prior, list_priors

    if name is None:
        if params:
            raise UsageError("--prior-param needs --prior (the parameters belong to a prior)")
        return
    if name not in list_priors():
        raise UsageError(f"unknown --prior {name!r}; registered priors: {', '.join(list_priors())}")
    try:
        check_prior_params(name, params, get_prior(name).defaults)
    except ValueError as error:
        raise UsageError(f"--prior-param: {error}") from None


def check_spec(spec: str, argument: str = "SPEC") -> None:
    """A known scheme, or an existing path whose scheme can be inferred."""
    if names_a_path(spec):
        try:
            infer_scheme(spec)
        except ValueError as error:
            raise UsageError(f"{argument}: {error}") from None
        return
    schemes = {s.name: s for s in list_schemes()}
    scheme, colon, _ = spec.partition(":")
    if colon and scheme in schemes:
        return
    examples = ", ".join(s.example for s in schemes.values())
    raise UsageError(f"{argument} {spec!r} is neither a model spec 'scheme:rest' of a loaded plugin nor an existing "
                     f"path; examples: {examples}")


def is_data_spec(text: str) -> bool:
    """A data set spec that load_images reads (digits, an idx data set, an image folder), not a model."""
    from sphere_plugins.data import idx_dataset

    return text in DATA_SPECS or text.startswith("folder:") or idx_dataset(text) is not None


def check_data(spec: str, argument: str = "--data") -> None:
    """An idx data set's files are read and checked now, so a missing or corrupt file stops before any work."""
    from sphere_plugins.data import check_idx_files, idx_dataset

    if idx_dataset(spec) is None:
        return
    try:
        check_idx_files(spec)
    except (OSError, ValueError) as error:
        raise UsageError(f"{argument} {spec!r}: {error}") from None


def check_out(path: str, outputs: list[str], argument: str = "--out") -> Path:
    """The output folder, checked before any work: new, empty or written by sphere-plugins, and none of `outputs`
    (the names the command writes; "x/" a folder) a file of the user's. Nothing is created yet."""
    from sphere_plugins.output_folder import OutputFolder

    try:
        OutputFolder(path).check(outputs)
    except ValueError as error:
        raise UsageError(f"{argument}: {error}") from None
    return Path(path).expanduser()


def versions() -> dict[str, str | None]:
    """torch's version and those of the distributions that ship the loaded plugins (sphere-plugins included)."""
    return {**plugin_distributions(), **installed_versions("torch")}


def write_record(out: Path, name: str, args: argparse.Namespace, **extra: Any) -> Path:
    """The options of this run and the library versions, as JSON beside its outputs."""
    options = {k: v for k, v in vars(args).items() if k != "run"}
    text = jsontext.dumps({"options": options, "versions": versions(), **extra}, indent=2, default=str) + "\n"
    return atomic_write(out / name, lambda handle: handle.write(text.encode()))


def load_wrapped_generator(spec: str, args: argparse.Namespace, options: dict[str, Any]):
    """The spec's model wrapped as a generator with the command line's sphere settings (a saved wrapper as is)."""
    import torch

    from sphere_plugins import SphericalAutoencoder, SphericalGenerator, load_model, wrap_generator

    model = load_model(spec, **options)
    if not isinstance(model, (SphericalGenerator, SphericalAutoencoder)):
        model = wrap_generator(model, center=not args.no_center, spherize=not args.no_spherize, radius=args.radius)
    if isinstance(model, torch.nn.Module):
        model = model.to(args.device).eval()
    return model


class _ModelKwarg(argparse.Action):
    """Stores a declared generator keyword's value in args.model_kwargs."""

    def __init__(self, *args: Any, keyword: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keyword = keyword

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.model_kwargs = {**namespace.model_kwargs, self.keyword: values}


def add_model_kwargs(parser: argparse.ArgumentParser) -> None:
    """A flag for each generate() keyword the loaded plugins' schemes declare (ModelScheme.model_kwargs, e.g.
    StyleGAN2's --truncation-psi); the values set land in args.model_kwargs."""
    parser.set_defaults(model_kwargs={})
    for scheme in list_schemes():
        for declared in scheme.model_kwargs:
            try:
                parser.add_argument(declared.flag, action=_ModelKwarg, keyword=declared.keyword, type=declared.type,
                                    metavar=declared.metavar, help=f"{declared.help} [{scheme.name}]")
            except argparse.ArgumentError:  # a flag the command or another scheme has: the first one stays
                warnings.warn(f"plugin {scheme.plugin!r} declares {declared.flag} for scheme {scheme.name!r}, a flag "
                              f"`{parser.prog}` already has; it is left out", stacklevel=2)


def check_model_kwargs(wrapper: Any, args: argparse.Namespace) -> None:
    """Refuse a generator flag (see add_model_kwargs) whose keyword the wrapper's generate() does not take, before
    any image is made: a saved spherical autoencoder decodes codes and takes none."""
    import inspect

    flags = {declared.keyword: declared.flag for scheme in list_schemes() for declared in scheme.model_kwargs}
    generate = getattr(getattr(wrapper, "adapter", None), "generate", None)
    try:
        parameters = inspect.signature(generate).parameters if generate is not None else {}
    except (TypeError, ValueError):  # no signature to read: the call decides
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for keyword in args.model_kwargs:
        if keyword not in parameters:
            raise ValueError(f"{flags.get(keyword, keyword)} does not apply to {args.spec!r}: its generator takes no "
                             f"{keyword!r}")


def check_sphere_options(args: argparse.Namespace, outputs: list[str]) -> None:
    """Check what add_sphere_options and add_common parse for a generator SPEC and that --out may receive
    `outputs`; sets prior_params, options, out_dir."""
    if args.radius is not None and not args.radius > 0:
        raise UsageError(f"--radius must be positive, got {args.radius}")
    args.prior_params = pairs(args.prior_param, "--prior-param")
    args.options = pairs(args.option, "--option")
    check_prior(args.prior, args.prior_params)
    if args.seed_convention == "nvlabs":
        if args.prior not in (None, "normal") or args.prior_params:
            raise UsageError("--seed-convention nvlabs draws N(0, I) latents as NVIDIA's generate.py does; drop "
                             f"--prior {args.prior} / --prior-param or use --seed-convention torch")
    check_spec(args.spec)
    args.out_dir = check_out(args.out, outputs)


def add_sphere_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prior", help="latent prior (see `sphere-plugins list`); default: the wrapper's (normal)")
    parser.add_argument("--prior-param", action="append", metavar="K=V", help="a prior parameter, e.g. rate=2")
    parser.add_argument("--option", action="append", metavar="K=V",
                        help="a load_model option of the spec's scheme (see `sphere-plugins list`)")
    parser.add_argument("--seed-convention", choices=SEED_CONVENTIONS, default="torch",
                        help="how a seed becomes z: torch (default: the prior drawn from "
                        "torch.Generator().manual_seed(seed)) or nvlabs (np.random.RandomState(seed).randn(1, z_dim) "
                        "as NVIDIA's generate.py; N(0, I) only; add --no-center --no-spherize for NVIDIA's images)")
    parser.add_argument("--no-center", action="store_true", help="do not centerize the latents")
    parser.add_argument("--no-spherize", action="store_true", help="do not spherize the latents")
    parser.add_argument("--radius", type=float, help="sphere radius (default: the adapter's, sqrt(d))")
    add_model_kwargs(parser)
