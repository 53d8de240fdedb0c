"""The spread over seeds: records of runs that differ only in --seed, gathered into mean +- std."""

import json

import pytest

from benchmarks.common import BenchmarkError
from benchmarks.seeds import load_runs, main, spread


def write_run(folder, seed, values, scale="standard", suite="dimension"):
    """A results.json as a suite writes it: options and records (FD and recall of two models)."""
    records = [{"metric": metric, "value": value, "model": model, "prior": "normal",
                "extra": {"measured_on": "decoder samples"}}
               for (metric, model), value in values.items()]
    path = folder / suite / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"options": {"seed": seed, "scale": scale, "data": "fashion-mnist"},
                                "records": records}))
    return folder


def test_mean_and_sample_std_over_seeds(tmp_path, capsys):
    runs = [write_run(tmp_path / f"s{seed}", seed, {("FD", "sae"): fd, ("recall (k=3)", "sae"): r})
            for seed, fd, r in ((0, 10.0, 0.1), (1, 12.0, 0.2), (2, 14.0, 0.6))]
    rows = {row["metric"]: row for row in spread(load_runs("dimension", runs))}
    assert rows["FD"]["values"] == [10.0, 12.0, 14.0]
    assert rows["FD"]["mean"] == pytest.approx(12.0) and rows["FD"]["std"] == pytest.approx(2.0)
    assert rows["recall (k=3)"]["mean"] == pytest.approx(0.3)
    assert rows["recall (k=3)"]["std"] == pytest.approx(0.264575, rel=1e-5)  # sqrt(0.07), ddof 1
    assert main(["dimension", *map(str, runs), "--metric", "recall", "--json-out", str(tmp_path / "s.json")]) == 0
    table = capsys.readouterr().out
    assert "| seed 0 | seed 1 | seed 2 | mean | std |" in table and "FD" not in table.split("\n", 2)[2]
    assert [r["metric"] for r in json.loads((tmp_path / "s.json").read_text())] == ["recall (k=3)"]


def test_only_numbers_present_in_every_run_are_gathered(tmp_path):
    a = write_run(tmp_path / "a", 0, {("FD", "sae"): 1.0, ("FD", "vae"): 2.0})
    b = write_run(tmp_path / "b", 1, {("FD", "sae"): 3.0})
    assert [row["model"] for row in spread(load_runs("dimension", [a, b]))] == ["sae"]


@pytest.mark.parametrize("second, message", [
    ({"seed": 0}, "seeds [0, 0] repeat"),
    ({"seed": 1, "scale": "quick"}, "differs from"),
    (None, "does not exist"),
])
def test_runs_that_are_not_the_same_experiment_are_refused(tmp_path, capsys, second, message):
    a = write_run(tmp_path / "a", 0, {("FD", "sae"): 1.0})
    b = tmp_path / "b"
    if second is not None:
        write_run(b, second["seed"], {("FD", "sae"): 2.0}, scale=second.get("scale", "standard"))
    with pytest.raises(BenchmarkError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_runs("dimension", [a, b])
    assert main(["dimension", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_one_run_is_not_a_spread(tmp_path):
    with pytest.raises(BenchmarkError, match="at least 2 run folders"):
        load_runs("dimension", [write_run(tmp_path / "a", 0, {("FD", "sae"): 1.0})])
