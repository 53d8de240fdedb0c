"""The training-step timer: round-robin order and the same-work noise floor."""

import torch
from torch import nn

from sphere_plugins.training.speed import compare_step_times, step_times


class OrderRecorder(nn.Module):
    """An objective that records when it ran."""

    def __init__(self, name: str, log: list[str]):
        super().__init__()
        self.name, self.log = name, log
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, batch):
        self.log.append(self.name)
        return (self.weight * batch).sum(), {}


def test_each_objective_leads_a_round_in_turn():
    log: list[str] = []
    objectives = {name: OrderRecorder(name, log) for name in "abc"}
    times = step_times(objectives, torch.ones(2), repeats=6, warmup=0)
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6, "c": 6}
    rounds = [log[i:i + 3] for i in range(0, len(log), 3)]
    assert [r[0] for r in rounds] == ["a", "b", "c", "a", "b", "c"]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)


def test_the_reference_is_timed_twice_to_give_a_noise_floor():
    result = compare_step_times(kinds=("sae", "vae"), batch_size=4, resolution=8, z_dim=4, width=8, repeats=3,
                                warmup=1)
    assert set(result["median_ms"]) == {"sae", "vae", "vae again"}
    assert result["ratio_to_reference"]["vae"] == 1.0
    assert result["ratio_to_reference"]["vae again"] > 0
