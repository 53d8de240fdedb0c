"""TrainConfig(compile=True): the same training run as eager, within float32 rounding."""

import pytest
import torch

from sphere_plugins.training import TrainConfig, conv_objective, train


@pytest.mark.slow  # about a minute of compiling forward and backward on a busy 2-core machine
def test_a_compiled_training_run_follows_the_eager_one():
    torch._dynamo.reset()
    images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        objective = conv_objective("sae", resolution=8, z_dim=4, width=4)
        config = TrainConfig(steps=3, batch_size=8, lr=1e-3, log_every=1, progress=False, cpu=True, compile=compiled)
        with torch._inductor.config.patch(compile_threads=1):
            runs[compiled] = train(objective, images, config)
    eager, compiled = runs[False], runs[True]
    assert [r["step"] for r in compiled.history] == [1, 2, 3]
    for a, b in zip(eager.history, compiled.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    for (name, p), q in zip(eager.objective.named_parameters(), compiled.objective.parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-5, msg=name)
    assert type(compiled.objective) is type(eager.objective)  # the result is the plain module, not a wrapper


def test_compile_must_be_a_bool():
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        TrainConfig(compile="yes")
