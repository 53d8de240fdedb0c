"""`sphere-plugins sample`: one PNG per seed, a grid and a JSON record of the run."""

from __future__ import annotations

import argparse

from sphere_plugins.cli import common

HELP = """examples:
  sphere-plugins sample stylegan2:ffhq.pkl --prior chi2 --seeds 0-15 --out samples/
  sphere-plugins sample ffhq.pkl --seeds 0-63 --batch 16 --truncation-psi 0.7 --out samples/
  sphere-plugins sample stylegan2:cond.pkl --class 3 --seeds 0-7 --out class3/
  sphere-plugins sample diffusers:path/to/ddpm --prior poisson --prior-param rate=2 --seeds 0-3 --out ddpm/
  sphere-plugins sample saved-model/ --seeds 0-15 --out samples/     # a save_pretrained folder
  sphere-plugins sample ffhq.pkl --seeds 0-3 --seed-convention nvlabs --no-center --no-spherize --out nv/
The same seed gives the same image whatever --batch is. The last line gives the images NVIDIA's generate.py
writes for those seeds (its z, --noise-mode const)."""


def add_parser(commands) -> None:
    parser = commands.add_parser("sample", help="images from seeds, any prior", epilog=HELP,
                                 description="Sample a model (spec or path) from any prior on the sphere: "
                                 "seedNNNN.png per seed, grid.png and sample.json in --out.")
    parser.add_argument("spec", metavar="SPEC", help="model spec 'scheme:rest' or a path (see `sphere-plugins list`)")
    parser.add_argument("--seeds", default="0-15", help="seeds as ranges and lists, e.g. 0-15 or 1,4,9 (default 0-15)")
    parser.add_argument("--out", required=True, help="folder to write into")
    parser.add_argument("--batch", type=int, default=16, help="images per forward pass (default 16)")
    common.add_sphere_options(parser)
    common.add_common(parser)
    parser.set_defaults(check=check, run=run)


def check(args: argparse.Namespace) -> None:
    args.seed_list = common.seeds(args.seeds)
    if args.batch < 1:
        raise common.UsageError(f"--batch must be a positive int, got {args.batch}")
    common.check_sphere_options(args, _outputs(args.seed_list))


def _png(seed: int) -> str:
    return f"seed{seed:04d}.png"


def _outputs(seeds: list[int]) -> list[str]:
    return [_png(seed) for seed in seeds] + ["grid.png", "sample.json"]


def run(args: argparse.Namespace) -> int:
    import torch

    from sphere_plugins.data import save_image_grid
    from sphere_plugins.generation import sample_seeds, save_png
    from sphere_plugins.output_folder import OutputFolder

    wrapper = common.load_wrapped_generator(args.spec, args, args.options)
    common.check_model_kwargs(wrapper, args)
    OutputFolder(args.out_dir).reserve(_outputs(args.seed_list))
    images = []
    for seed, image in sample_seeds(wrapper, args.seed_list, args.batch, args.prior, args.model_kwargs,
                                    progress=True, convention=args.seed_convention, **args.prior_params):
        save_png(image, args.out_dir / _png(seed))
        images.append(image.cpu())
    save_image_grid(torch.stack(images), args.out_dir / "grid.png")
    common.write_record(args.out_dir, "sample.json", args, prior=args.prior or wrapper.prior,
                        prior_params=args.prior_params or wrapper.prior_params)
    print(f"wrote {len(images)} images, grid.png and sample.json to {args.out_dir}")
    return 0
