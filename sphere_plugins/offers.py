"""What plugins offer besides adapters: the model-spec schemes they load (with the generator keywords a
command line may set) and small generators they can train.

Callers (benchmarks, error messages, CLIs) read these through `sphere_plugins.schemes` instead of keeping
their own lists, so a third-party plugin shows up everywhere by implementing the hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

KINDS = ("generator", "autoencoder")


@dataclass(frozen=True)
class ModelKwarg:
    """A keyword of the generators' `generate(z, **model_kwargs)` that the command line sets with `flag`.

    `type` turns the flag's text into the value (int, float, str, ...); `help` says what it does and its
    default; `metavar` names the value in --help. Example: StyleGAN2's
    `ModelKwarg("--truncation-psi", "truncation_psi", float, "truncation (default 1: none)")`.
    """

    flag: str
    keyword: str
    type: Callable[[str], Any] = str
    help: str = ""
    metavar: str | None = None

    def __post_init__(self) -> None:
        if not self.flag.startswith("--") or not self.keyword.isidentifier():
            raise ValueError(f"ModelKwarg needs a flag starting with '--' and a keyword that is a Python name; "
                             f"got flag={self.flag!r}, keyword={self.keyword!r}")


@dataclass(frozen=True)
class ModelScheme:
    """A spec scheme a plugin loads ("stylegan2" in "stylegan2:ffhq.pkl"): what its models are and how to use it.

    `kinds`: which of "generator" / "autoencoder" the loaded models wrap as (none when they are wrappers already).
    `usage`: the spec forms, for help and error messages, e.g. "stylegan2:PATH.pkl or stylegan2:tiny".
    `example`: one spec that works, shown by `sphere-plugins list`; `description`: one line on what loads;
    `defaults`: the options a spec gets when it names none (shown by `list`).
    `recognizes(path)`: whether a plain file or folder is one this scheme loads, so `load_model(path)` can
    infer the scheme; it looks only at names and small files.
    `hub_ids`: whether "owner/name" after the colon may name a model the plugin finds in a local cache
    (so a missing path is not an error by itself).
    `model_kwargs`: the keywords of its generators' `generate()` that `sphere-plugins sample` and `interpolate`
    offer as flags (see ModelKwarg).
    `plugin` and `version` are filled in by `list_schemes()` (the plugin that declared it and its distribution).
    """

    name: str
    kinds: tuple[str, ...]
    usage: str
    example: str = ""
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    recognizes: Callable[[Path], bool] | None = field(default=None, hash=False, compare=False)
    hub_ids: bool = False
    model_kwargs: tuple[ModelKwarg, ...] = ()
    plugin: str = ""
    version: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if not self.name or ":" in self.name or unknown:
            raise ValueError(f"ModelScheme needs a name without ':' and kinds among {KINDS}; "
                             f"got name={self.name!r}, kinds={self.kinds!r}")


@dataclass(frozen=True)
class TrainableGenerator:
    """A small generator a plugin can build and train on images with N(0, I) latents (for benchmarks).

    `describe(resolution, z_dim, width, depth)` names the network in one line (it labels results).
    `train(images, *, z_dim, width, depth, steps, batch, lr, seed, device, checkpoint_dir, checkpoint_every,
    callback)` trains on `images` (N, C, H, W in [-1, 1]), resumes from the newest checkpoint in
    `checkpoint_dir`, calls `callback(step)` after each step it runs, and returns the generator to sample
    (an nn.Module that `wrap_generator` recognizes). `width` is the largest channel count, `depth` the
    number of layers of the latent-to-style network (or the plugin's closest notion of it).
    `completed_steps(checkpoint_dir)` says how many steps the checkpoints there hold (0 when none).
    """

    name: str
    describe: Callable[[int, int, int, int], str]
    train: Callable[..., nn.Module]
    completed_steps: Callable[[Path], int]


__all__ = ["KINDS", "ModelKwarg", "ModelScheme", "TrainableGenerator"]
