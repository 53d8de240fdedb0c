"""`sphere-plugins interpolate`: great-circle paths through the latents of seeds, as a grid PNG and a GIF."""

from __future__ import annotations

import argparse

from sphere_plugins.cli import common

HELP = """examples:
  sphere-plugins interpolate stylegan2:ffhq.pkl --seeds 0,1 --steps 8 --out path/
  sphere-plugins interpolate diffusers:path/to/ddpm --seeds 3,5,7 --steps 12 --prior uniform --out path/
Each row of grid.png is one segment (seed to next seed); interpolation.gif plays them in order."""

OUTPUTS = ["grid.png", "interpolation.gif", "interpolate.json"]


def add_parser(commands) -> None:
    parser = commands.add_parser("interpolate", help="great-circle paths between seeds", epilog=HELP,
                                 description="Interpolate along great circles of the latent sphere between the "
                                 "latents of consecutive seeds: grid.png, interpolation.gif, interpolate.json.")
    parser.add_argument("spec", metavar="SPEC", help="model spec 'scheme:rest' or a path")
    parser.add_argument("--seeds", required=True, help="two or more seeds, e.g. 0,1 or 3,5,7")
    parser.add_argument("--steps", type=int, default=8, help="images per segment, both ends included (default 8)")
    parser.add_argument("--out", required=True, help="folder to write into")
    common.add_sphere_options(parser)
    common.add_common(parser)
    parser.set_defaults(check=check, run=run)


def check(args: argparse.Namespace) -> None:
    args.seed_list = common.seeds(args.seeds, at_least=2)
    if args.steps < 2:
        raise common.UsageError(f"--steps must be an int >= 2, got {args.steps}")
    common.check_sphere_options(args, OUTPUTS)


def run(args: argparse.Namespace) -> int:
    import torch

    from sphere_plugins import SphericalGenerator
    from sphere_plugins.data import save_image_grid
    from sphere_plugins.generation import interpolate_seeds, save_gif
    from sphere_plugins.output_folder import OutputFolder

    wrapper = common.load_wrapped_generator(args.spec, args, args.options)
    if not isinstance(wrapper, SphericalGenerator):
        raise ValueError(f"{args.spec!r} holds a {type(wrapper).__name__}; interpolate needs a generator")
    common.check_model_kwargs(wrapper, args)
    paths = interpolate_seeds(wrapper, args.seed_list, args.steps, args.prior, args.model_kwargs,
                              convention=args.seed_convention, **args.prior_params).cpu()
    OutputFolder(args.out_dir).reserve(OUTPUTS)
    save_image_grid(paths.flatten(0, 1), args.out_dir / "grid.png", nrow=args.steps)
    frames = torch.cat([paths[0], *(segment[1:] for segment in paths[1:])])  # each seed's image once
    save_gif(frames, args.out_dir / "interpolation.gif")
    common.write_record(args.out_dir, "interpolate.json", args)
    print(f"wrote grid.png ({paths.shape[0]} rows of {args.steps}) and interpolation.gif to {args.out_dir}")
    return 0
