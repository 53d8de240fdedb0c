"""Tiny presets for the benchmark suites, so each test runs a real suite in seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TINY_THEORY = {"dims": [2, 16, 512], "pairs": 4000, "w2_points": 12, "w2_repeats": 2, "pdf_dims": [3, 512]}
TINY_OVERHEAD = {"repeats": 2, "batch": 2, "step_repeats": 1, "copy_shapes": [[4, 8], [16, 32]]}
TINY_SAMPLING = {"resolution": 8, "z_dim": 8, "width": 8, "depth": 1, "steps": 2, "batch": 4,
                 "lr": 0.002, "n_samples": 20, "grid": 4, "limit": 150}
TINY_AUTOENCODER = {"resolution": 8, "z_dim": 4, "width": 4, "steps": 3, "batch": 8, "lr": 1e-3, "n_samples": 20,
                    "held_out": 0.2, "n_test": None, "tsne_points": 40, "limit": 150}
TINY_FINETUNE = {"resolution": 8, "blocks": [8, 8], "latent_channels": 2, "norm_groups": 4, "pretrain_steps": 2,
                 "steps": 2, "batch": 8, "lr": 1e-3, "beta": 1.0, "n_samples": 20, "held_out": 0.2, "n_test": None,
                 "limit": 150, "components": 2, "fit_codes": 40}

TINY_DIMENSION = {"resolution": 8, "width": 8, "steps": 3, "batch": 8, "lr": 1e-3, "dims": [4, 8, 16, 32],
                  "svae_max_dim": 8, "option_dims": [4, 32], "components": 2, "fit_codes": 60, "fit_iter": 5,
                  "n_samples": 20, "n_test": 30, "n_geometry": 20, "limit": 200,
                  "study_models": ("sae", "ae", "vae", "vae-beta0.1", "svae", "rae"), "study_dims": [4, 32], "equal_params_from": 32,
                  "memo_train": 100}


@pytest.fixture
def tiny_presets(monkeypatch):
    """Replace the quick presets of the cheap suites by tiny ones for this test."""
    from benchmarks.suites import autoencoder, dimension, finetune, overhead, sampling, theory

    monkeypatch.setitem(theory.PRESETS, "quick", theory.Preset(**TINY_THEORY))
    monkeypatch.setitem(overhead.PRESETS, "quick", overhead.Preset(**TINY_OVERHEAD))
    monkeypatch.setitem(sampling.PRESETS, "quick", sampling.Preset(**TINY_SAMPLING))
    monkeypatch.setitem(autoencoder.PRESETS, "quick", autoencoder.Preset(**TINY_AUTOENCODER))
    monkeypatch.setitem(finetune.PRESETS, "quick", finetune.Preset(**TINY_FINETUNE))
    monkeypatch.setitem(dimension.PRESETS, "quick", dimension.Preset(**TINY_DIMENSION))
    for suite in (sampling, autoencoder, finetune):  # the digits smoke run's overrides would undo the tiny sizes
        monkeypatch.setattr(suite, "SMOKE", {})


class PixelProjection:
    """A cheap stand-in feature network: a fixed random projection of the pixels to 6 numbers."""

    name = "pixel-projection"
    fingerprint = "pixel-projection-6"
    description = "fixed random projection of the pixels (tests only)"

    def __call__(self, images):
        import torch

        flat = images.float().flatten(1)
        weights = torch.randn(flat.shape[1], 6, generator=torch.Generator().manual_seed(0))
        return (flat @ weights).double().numpy()


@pytest.fixture
def cheap_features(monkeypatch):
    """Metrics use PixelProjection instead of training the digits classifier (plumbing tests only)."""
    import sphere_plugins.metrics as metrics

    extractor = PixelProjection()
    monkeypatch.setattr(metrics, "resolve_features", lambda *args, **kwargs: extractor)
    return extractor


@pytest.fixture
def run_cli():
    """Call the CLI in-process on the digits (unless the test names its --data); returns its exit status."""
    from benchmarks.cli import main

    def call(argv):
        return main(list(argv) if "--data" in argv else [*argv, "--data", "digits"])

    return call
