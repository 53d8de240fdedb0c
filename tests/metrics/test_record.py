"""Metric records carry their provenance and serialize to JSON."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from sphere_plugins.metrics import MetricRecord, library_versions


def test_record_round_trips_through_json():
    record = MetricRecord("FD-digits-cnn", np.float64(1.5), "digits-cnn", 100, 0, "normal", "stylegan2:tiny", "digits")
    loaded = json.loads(json.dumps(record.to_dict()))
    assert loaded["metric"] == "FD-digits-cnn" and loaded["value"] == 1.5 and loaded["prior"] == "normal"
    assert loaded["versions"]["torch"] == torch.__version__.split("+")[0]


def test_versions_name_every_library_a_number_depends_on():
    assert {"torch", "numpy", "clean-fid", "lpips", "sphere-plugins"} <= set(library_versions())


def test_prior_and_model_are_filled_by_replace():
    record = dataclasses.replace(MetricRecord("MSE", 0.1), prior="chi2", model="builtin:tiny-ae")
    assert (record.prior, record.model, record.metric) == ("chi2", "builtin:tiny-ae", "MSE")
