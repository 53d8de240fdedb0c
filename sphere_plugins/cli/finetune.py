"""`sphere-plugins finetune`: turn an autoencoder into a spherical one, resumable, saved for load_model(DIR)."""

from __future__ import annotations

import argparse
import math

from sphere_plugins.cli import common

HELP = """examples:
  sphere-plugins finetune diffusers:tiny-vae --option scaling_factor=1.0 --data digits --steps 400 --out vae-sae/
  sphere-plugins finetune builtin:tiny-ae --data folder:images/ --steps 2000 --batch 64 --out sae/
  sphere-plugins finetune builtin:tiny-ae --data fashion-mnist --steps 3000 --out fmnist-sae/ --compile
  sphere-plugins finetune diffusers:path/to/vae --data folder:images/ --steps 1000 --out vae-sae/   # again: resumes
The result loads with sphere_plugins.load_model("vae-sae/"); checkpoints go to OUT/checkpoints, and a
second run with more --steps continues from the latest one (the same SPEC and --data; a new --lr applies;
accelerate launch works too). A run whose loss stops being finite stops naming the step."""

# What finetune writes into --out: its log, record and checkpoints, then the save_pretrained files.
TRAINING_OUTPUTS = ["log.jsonl", "finetune.json", "checkpoints/"]
SAVED_OUTPUTS = ["sphere_model.json", "wrapper_state.safetensors", "model/"]


def add_parser(commands) -> None:
    parser = commands.add_parser("finetune", help="fine-tune an autoencoder into a spherical autoencoder",
                                 epilog=HELP, description="Train an autoencoder on reconstruction alone with its "
                                 "codes on the sphere, then save it with save_pretrained to --out.")
    parser.add_argument("spec", metavar="SPEC", help="autoencoder spec 'scheme:rest' or a path")
    parser.add_argument("--data", required=True, help=f"{common.DATA_HELP} (a folder: images in any format PIL "
                        "reads); resized to what the model decodes")
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps in total (a resumed run included)")
    parser.add_argument("--out", required=True, help="folder for the result and its checkpoints")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: at the end)")
    parser.add_argument("--resolution", type=int, help="image size (default: what the model decodes)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="image channels (default: the model's)")
    parser.add_argument("--option", action="append", metavar="K=V", help="a load_model option of the spec")
    parser.add_argument("--compile", action="store_true",
                        help="run forward and backward through torch.compile (pays off on GPUs; compiling takes seconds)")
    parser.add_argument("--prior", default="normal", help="the saved wrapper's default prior (default normal)")
    common.add_common(parser)
    parser.set_defaults(check=check, run=run)


def check(args: argparse.Namespace) -> None:
    for name in ("steps", "batch"):
        if getattr(args, name) < 1:
            raise common.UsageError(f"--{name} must be a positive int, got {getattr(args, name)}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise common.UsageError(f"--lr must be a positive finite number, got {args.lr}")
    if args.resolution is not None and args.resolution < 1:
        raise common.UsageError(f"--resolution must be a positive int (omit it for the model's own), got "
                                f"{args.resolution}")
    common.check_seed(args.seed)
    if not common.is_data_spec(args.data):
        raise common.UsageError(f"--data must be {common.DATA_HELP}, got {args.data!r}")
    common.check_data(args.data)
    args.options = common.pairs(args.option, "--option")
    common.check_prior(args.prior, {})
    common.check_spec(args.spec)
    args.out_dir = common.check_out(args.out, [*TRAINING_OUTPUTS, *SAVED_OUTPUTS])


def run(args: argparse.Namespace) -> int:
    import torch

    from sphere_plugins import load_model, wrap_autoencoder
    from sphere_plugins.output_folder import OutputFolder
    from sphere_plugins.training import TrainConfig, finetune_autoencoder_to_sae

    torch.manual_seed(args.seed)  # a model built with random weights (builtin:tiny-ae) starts from the seed too
    OutputFolder(args.out_dir).reserve(TRAINING_OUTPUTS)
    model = load_model(args.spec, **args.options)
    wrapper = wrap_autoencoder(model, prior=args.prior)
    with torch.no_grad():
        shape = wrapper.sample(1, generator=torch.Generator().manual_seed(0)).shape
    options = " ".join(f"--option {k}={v}" for k, v in sorted(args.options.items()))
    config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed,
                         checkpoint_every=args.checkpoint_every, checkpoint_dir=str(args.out_dir / "checkpoints"),
                         resume=True, log_path=str(args.out_dir / "log.jsonl"), cpu=args.device == "cpu",
                         compile=args.compile, model_spec=f"{args.spec} {options}".strip())
    result = finetune_autoencoder_to_sae(wrapper, args.data, config, resolution=args.resolution or shape[-1],
                                         channels=args.channels or shape[1])
    result.objective.wrapper.save_pretrained(args.out_dir)
    common.write_record(args.out_dir, "finetune.json", args, final_step=result.step,
                        last_log=result.history[-1] if result.history else None)
    print(f"trained to step {result.step}; saved to {args.out_dir} (load with sphere_plugins.load_model)")
    return 0
