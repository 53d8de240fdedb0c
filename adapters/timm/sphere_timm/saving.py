"""A TimmAutoencoder (timm encoder + the core's ConvDecoder) as safetensors + config.json, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphere_plugins.nets import ConvDecoder
from sphere_plugins.saving import read_module_folder, save_module_folder

from sphere_timm.autoencoder import TimmAutoencoder
from sphere_timm.encoder import TimmEncoder

FORMAT = "sphere-timm"


def save_timm_autoencoder(model: TimmAutoencoder, folder: Path) -> None:
    """Write the encoder's timm name and arguments, the decoder's config, and every weight."""
    if type(model.decoder) is not ConvDecoder:
        raise ValueError(f"save_pretrained saves a TimmAutoencoder whose decoder is the core's ConvDecoder, got "
                         f"{type(model.decoder).__name__}; save your decoder yourself (its state_dict)")
    encoder = model.encoder
    config = {"format": FORMAT, "decoder": model.decoder.config,
              "encoder": {"name": encoder.name, "z_dim": encoder.z_dim, "in_chans": encoder.in_chans,
                          "min_size": encoder.min_size, "timm_kwargs": encoder.timm_kwargs}}
    save_module_folder(model, folder, config)


def load_saved(folder: Path, options: dict[str, Any]) -> TimmAutoencoder:
    """The TimmAutoencoder save_timm_autoencoder wrote to `folder` (no weights fetched: all are in the folder)."""
    if options:
        raise ValueError(f"a saved timm autoencoder takes no options, got {sorted(options)}")
    config, state = read_module_folder(folder, FORMAT)
    encoder_config = dict(config["encoder"])
    timm_kwargs = encoder_config.pop("timm_kwargs")
    model = TimmAutoencoder(TimmEncoder(**encoder_config, **timm_kwargs), ConvDecoder(**config["decoder"]))
    model.load_state_dict(state)
    return model.eval()


def is_saved_timm(path: Path) -> bool:
    """True for a folder save_timm_autoencoder wrote."""
    config = path / "config.json"
    return config.is_file() and f'"{FORMAT}"' in config.read_text(errors="replace")[:4096]
