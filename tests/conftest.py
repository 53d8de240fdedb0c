"""Shared test settings: deterministic, small, and quiet about thread oversubscription."""

import torch
from hypothesis import settings

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
settings.register_profile("project", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("project")
