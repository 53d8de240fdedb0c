"""Models for `load_model("diffusers:...")`: tiny configs for tests, local folders, and hub ids.

A folder is read with `from_pretrained`; its class comes from `model_index.json` (a pipeline) or
`config.json` (a model), both written by `save_pretrained`. A name like "owner/repo" that is not a local
folder is read from the local Hugging Face cache; nothing is downloaded unless the caller passes
`local_files_only=False` (so a mistyped relative folder never turns into a hub request).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from sphere_diffusers.recognize import SUPPORTED_AUTOENCODERS, supported_pipeline, unsupported_message

BUILDERS = ("tiny-vae", "tiny-ddpm")
# The builders' defaults, as `sphere-plugins list` shows them.
TINY_DEFAULTS = {"tiny-vae": {"channels": 3, "resolution": 16, "latent_channels": 4, "block_out_channels": [32, 64]},
                 "tiny-ddpm": {"channels": 3, "resolution": 16, "block_out_channels": [32, 64],
                               "num_train_timesteps": 20, "scheduler": "ddpm"}}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Initialize weights under `seed` without touching the caller's global RNG state."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_tiny_vae(channels: int = 3, resolution: int = 16, latent_channels: int = 4,
                   block_out_channels: Sequence[int] = (32, 64), seed: int | None = None, **config: Any) -> Any:
    """A small AutoencoderKL (random weights) for tests and quick runs; `config` overrides its other keys.

    `seed` fixes the initial weights without touching the global RNG.
    """
    from diffusers import AutoencoderKL

    blocks = tuple(block_out_channels)
    with _seeded(seed):
        return AutoencoderKL(in_channels=channels, out_channels=channels, sample_size=resolution,
                             latent_channels=latent_channels, block_out_channels=blocks,
                             down_block_types=("DownEncoderBlock2D",) * len(blocks),
                             up_block_types=("UpDecoderBlock2D",) * len(blocks),
                             **{"layers_per_block": 1, **config})


def build_tiny_ddpm(channels: int = 3, resolution: int = 16, block_out_channels: Sequence[int] = (32, 64),
                    num_train_timesteps: int = 20, scheduler: str = "ddpm", seed: int | None = None,
                    **unet_config: Any) -> Any:
    """A small unconditional pipeline (UNet2DModel + DDPM or DDIM scheduler, random weights) for tests.

    `seed` fixes the initial weights without touching the global RNG; `unet_config` overrides UNet2DModel keys.
    """
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

    kinds = {"ddpm": (DDPMPipeline, DDPMScheduler), "ddim": (DDIMPipeline, DDIMScheduler)}
    if scheduler not in kinds:
        raise ValueError(f"scheduler must be one of {sorted(kinds)}, got {scheduler!r}")
    pipeline_class, scheduler_class = kinds[scheduler]
    blocks = tuple(block_out_channels)
    with _seeded(seed):
        unet = UNet2DModel(sample_size=resolution, in_channels=channels, out_channels=channels,
                           block_out_channels=blocks, down_block_types=("DownBlock2D",) * len(blocks),
                           up_block_types=("UpBlock2D",) * len(blocks), **{"layers_per_block": 1, **unet_config})
    return pipeline_class(unet=unet, scheduler=scheduler_class(num_train_timesteps=num_train_timesteps))


def _class_name(config_file: Path) -> str:
    try:
        name = json.loads(Path(config_file).read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"cannot read the diffusers config {str(config_file)!r}: {error}") from error
    if not isinstance(name, str):
        raise ValueError(f"the diffusers config {str(config_file)!r} has no '_class_name' entry")
    return name


def _from_config(kind: str, config_file: Path, location: str, options: dict[str, Any]) -> Any:
    """from_pretrained with the class the config names, if this adapter supports it."""
    import diffusers

    name = _class_name(config_file)
    found = getattr(diffusers, name, None)
    if kind == "pipeline":
        if not isinstance(found, type) or not issubclass(found, diffusers.DiffusionPipeline) \
                or not supported_pipeline(found):
            raise ValueError(unsupported_message(f"the pipeline class {name!r} named in {str(config_file)!r}"))
    elif name not in SUPPORTED_AUTOENCODERS:
        raise ValueError(unsupported_message(f"the model class {name!r} named in {str(config_file)!r}"))
    return found.from_pretrained(location, **options)


def load_folder(folder: Path, options: dict[str, Any]) -> Any:
    """Load a pipeline or autoencoder that save_pretrained wrote to `folder`."""
    index, config = folder / "model_index.json", folder / "config.json"
    if index.is_file():
        return _from_config("pipeline", index, str(folder), options)
    if config.is_file():
        return _from_config("model", config, str(folder), options)
    raise FileNotFoundError(f"the folder {str(folder)!r} holds neither model_index.json (a pipeline) nor "
                            "config.json (a model); expected a folder written by save_pretrained")


def _no_network(repo_id: str, error: Exception, local_only: bool) -> FileNotFoundError:
    if local_only:
        return FileNotFoundError(
            f"no local folder {repo_id!r} exists (resolved to {str(Path(repo_id).resolve())!r}), and it is not in "
            "the local Hugging Face cache as a hub id; nothing was downloaded. Pass a local folder written by "
            "save_pretrained, or local_files_only=False to fetch the hub id from the Hugging Face Hub."
        )
    return FileNotFoundError(
        f"no local folder {repo_id!r} exists, and fetching it as a hub id from the Hugging Face Hub failed "
        f"({type(error).__name__}): there is probably no network here (or no such repo). Download the model on a "
        "connected machine, copy its folder here and pass 'diffusers:PATH' with that local folder."
    )


def load_hub(repo_id: str, options: dict[str, Any], local_files_only: bool = True) -> Any:
    """Load a hub id through from_pretrained: from the local cache only, unless local_files_only=False."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    options = {**options, "local_files_only": local_files_only}
    try:
        try:
            index = hf_hub_download(repo_id, "model_index.json", local_files_only=local_files_only)
            return _from_config("pipeline", Path(index), repo_id, options)
        except LocalEntryNotFoundError:
            if not local_files_only:
                raise
            config = hf_hub_download(repo_id, "config.json", local_files_only=True)
            return _from_config("model", Path(config), repo_id, options)
        except EntryNotFoundError:
            return _from_config("model", Path(hf_hub_download(repo_id, "config.json")), repo_id, options)
    except OSError as error:
        raise _no_network(repo_id, error, local_files_only) from error


def load_diffusers(name: str, options: dict[str, Any]) -> Any:
    """The model "diffusers:NAME" names: a tiny builder, a local folder, or a hub id (from the local cache
    unless options has local_files_only=False)."""
    if name == "tiny-vae":
        return build_tiny_vae(**options)
    if name == "tiny-ddpm":
        return build_tiny_ddpm(**options)
    options = dict(options)
    local_only = options.pop("local_files_only", True)
    if not isinstance(local_only, bool):
        raise ValueError(f"local_files_only must be True or False, got {local_only!r}")
    folder = Path(name).expanduser()
    if folder.is_dir():
        return load_folder(folder, {**options, "local_files_only": True})
    if folder.exists():
        raise ValueError(f"'diffusers:{name}' must name a folder written by save_pretrained, got a file")
    if _HUB_ID.match(name):
        return load_hub(name, options, local_only)
    raise FileNotFoundError(f"no model folder at {name!r} (resolved to {str(folder.resolve())!r}); expected a "
                            "folder written by save_pretrained, a hub id 'owner/repo', or one of "
                            f"{', '.join(BUILDERS)}")
