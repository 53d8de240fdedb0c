"""A TimmAutoencoder (timm encoder + the core's ConvDecoder) as safetensors + config.json, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphere_plugins.module_folder import checked_ints, load_module_folder, save_module_folder
from sphere_plugins.nets import ConvDecoder
from sphere_plugins.records import record_format

from sphere_timm.autoencoder import TimmAutoencoder
from sphere_timm.encoder import TimmEncoder

FORMAT = "sphere-timm"


def save_timm_autoencoder(model: TimmAutoencoder, folder: Path) -> None:
    """Write the encoder's timm name and arguments, the decoder's config, and every weight."""
    if type(model.decoder) is not ConvDecoder:
        raise ValueError(f"save_pretrained saves a TimmAutoencoder whose decoder is the core's ConvDecoder, got "
                         f"{type(model.decoder).__name__}; save your decoder yourself (its state_dict)")
    encoder = model.encoder
    config = {"decoder": model.decoder.config,
              "encoder": {"name": encoder.name, "z_dim": encoder.z_dim, "in_chans": encoder.in_chans,
                          "min_size": encoder.min_size, "timm_kwargs": encoder.timm_kwargs}}
    save_module_folder(model, folder, FORMAT, config)


# What a saved folder's config may set: bounded ints for the decoder and the encoder, and timm keyword arguments
# that are plain values but never a way to read a file (every weight comes from the folder itself).
DECODER_ARGUMENTS = {"channels": (1, 64), "resolution": (4, 1 << 14), "z_dim": (1, 1 << 24), "width": (1, 1 << 16)}
ENCODER_ARGUMENTS = {"z_dim": (1, 1 << 24), "in_chans": (1, 64), "min_size": (1, 1 << 14)}
REFUSED_TIMM_KWARGS = ("pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir",
                       "pretrained_strict", "features_only", "num_classes")
MAX_TIMM_KWARG = 1 << 16


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) <= 64 and all(_plain(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return abs(value) <= MAX_TIMM_KWARG
    return value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= 200)


def _build(config: dict[str, Any]) -> TimmAutoencoder:
    encoder = config.get("encoder")
    if not isinstance(encoder, dict) or set(encoder) - {"name", *ENCODER_ARGUMENTS, "timm_kwargs"}:
        raise ValueError("field 'encoder' must be a dict of name, z_dim, in_chans, min_size and timm_kwargs, got "
                         + (f"the keys {sorted(encoder)[:8]}" if isinstance(encoder, dict) else type(encoder).__name__))
    arguments = checked_ints({k: v for k, v in encoder.items() if k in ENCODER_ARGUMENTS}, ENCODER_ARGUMENTS,
                             "field 'encoder'")
    timm_kwargs = encoder.get("timm_kwargs", {})
    if not isinstance(timm_kwargs, dict) or not all(isinstance(k, str) and _plain(v) for k, v in timm_kwargs.items()):
        raise ValueError(f"field 'encoder.timm_kwargs' must be a dict of plain values (numbers up to {MAX_TIMM_KWARG}, "
                         "short strings, lists of them)")
    refused = sorted(set(timm_kwargs) & set(REFUSED_TIMM_KWARGS))
    if refused:
        raise ValueError(f"field 'encoder.timm_kwargs' sets {refused}; a saved folder's weights all come from its "
                         "own model.safetensors")
    decoder = checked_ints(config.get("decoder"), DECODER_ARGUMENTS, "field 'decoder'")
    return TimmAutoencoder(TimmEncoder(encoder.get("name"), **arguments, **timm_kwargs), ConvDecoder(**decoder))


def load_saved(folder: Path, options: dict[str, Any]) -> TimmAutoencoder:
    """The TimmAutoencoder save_timm_autoencoder wrote to `folder` (no weights fetched: all are in the folder)."""
    if set(options) - {"allow_nonfinite"}:
        raise ValueError(f"a saved timm autoencoder takes only the option allow_nonfinite, got {sorted(options)}")
    return load_module_folder(folder, FORMAT, _build, **options)[1].eval()


def is_saved_timm(path: Path) -> bool:
    """True for a folder save_timm_autoencoder wrote."""
    return record_format(path / "config.json") == FORMAT
