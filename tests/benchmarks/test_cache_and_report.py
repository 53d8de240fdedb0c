"""Caching (a re-run does not recompute finished parts), failure handling and the report."""

from __future__ import annotations

import json

import pytest

from benchmarks.common import BenchmarkError


def parts(out) -> dict:
    return json.loads((out / "theory" / "results.json").read_text())["parts"]


def test_second_run_reads_every_part_from_the_cache(tiny_presets, run_cli, tmp_path, monkeypatch):
    from benchmarks.suites import theory

    assert run_cli(["theory", "--out", str(tmp_path)]) == 0
    assert {p["status"] for p in parts(tmp_path).values()} == {"computed"}
    first = json.loads((tmp_path / "theory" / "results.json").read_text())["records"]

    def fail(*args, **kwargs):
        raise AssertionError("a cached part was recomputed")

    monkeypatch.setattr(theory, "lemma1_rows", fail)
    monkeypatch.setattr(theory, "w2_rows", fail)
    assert run_cli(["theory", "--out", str(tmp_path)]) == 0
    assert {p["status"] for p in parts(tmp_path).values()} == {"cached"}
    again = json.loads((tmp_path / "theory" / "results.json").read_text())["records"]
    assert [r["value"] for r in again] == [r["value"] for r in first]


def test_a_changed_option_that_matters_recomputes(tiny_presets, run_cli, tmp_path):
    assert run_cli(["theory", "--out", str(tmp_path)]) == 0
    assert run_cli(["theory", "--out", str(tmp_path), "--seed", "1"]) == 0
    assert parts(tmp_path)["lemma1"]["status"] == "computed"
    assert parts(tmp_path)["theorem1"]["status"] == "cached"  # the seed is not part of its key


def test_a_corrupt_cache_file_is_recomputed(tiny_presets, run_cli, tmp_path):
    assert run_cli(["theory", "--out", str(tmp_path)]) == 0
    for path in (tmp_path / "cache" / "theory").glob("lemma1-*.json"):
        path.write_text("{ truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        assert run_cli(["theory", "--out", str(tmp_path)]) == 0
    assert parts(tmp_path)["lemma1"]["status"] == "computed"


def test_a_failing_suite_exits_1_and_keeps_finished_results(tiny_presets, run_cli, tmp_path, monkeypatch, capsys):
    from benchmarks.suites import overhead

    def broken(ctx):
        raise BenchmarkError("too few samples: n=3 < 65 needed")

    monkeypatch.setattr(overhead, "run", broken)
    assert run_cli(["theory", "overhead", "--out", str(tmp_path)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # progress bars aside
    assert errors == ["error: suite overhead: too few samples: n=3 < 65 needed"]
    assert (tmp_path / "theory" / "results.json").is_file()
    assert not (tmp_path / "overhead" / "results.json").exists()
    report = (tmp_path / "report.md").read_text()
    assert "Lemma 1" in report and "[overhead]" not in report


def test_report_gathers_tables_figures_and_commands(tiny_presets, run_cli, tmp_path):
    assert run_cli(["theory", "overhead", "--out", str(tmp_path), "--seed", "2"]) == 0
    report = (tmp_path / "report.md").read_text()
    for suite in ("theory", "overhead"):
        result = json.loads((tmp_path / suite / "results.json").read_text())
        assert f"`{result['command']}`" in report
        for table in result["tables"]:
            assert table["markdown"] in report
        for figure in result["figures"]:
            assert f"]({suite}/{figure['file']})" in report
            assert (tmp_path / suite / figure["file"]).is_file()
    assert "benchmarks/run.py theory overhead --out" in report and "--seed 2" in report


def test_report_without_results_says_so(tmp_path):
    from benchmarks.report import write_report

    assert "No suite has finished yet" in write_report(tmp_path).read_text()


def test_overhead_suite_records_ratios_of_its_own_medians(tiny_presets, run_cli, tmp_path):
    assert run_cli(["overhead", "--out", str(tmp_path)]) == 0
    records = json.loads((tmp_path / "overhead" / "results.json").read_text())["records"]
    wrapper = [r for r in records if r["metric"] == "wrapper_time_ratio"]
    copies = [r for r in records if r["metric"] == "centerize_spherize_over_copy"]
    assert wrapper and len(copies) == 2
    for r in wrapper:
        assert r["value"] == pytest.approx(r["extra"]["wrapped_ms"] / r["extra"]["raw_ms"], rel=1e-9)
    for r in copies:
        assert r["value"] == pytest.approx(r["extra"]["cs_ms"] / r["extra"]["copy_ms"], rel=1e-9)


def test_code_fingerprint_changes_with_any_source_file_of_the_package(tmp_path, monkeypatch):
    from benchmarks.common import code_fingerprint

    package = tmp_path / "fingerprinted_pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "ops.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_fingerprint(["fingerprinted_pkg"])
    assert code_fingerprint(["fingerprinted_pkg"]) == before
    (package / "sub" / "ops.py").write_text("def f():\n    return 2\n")
    assert code_fingerprint(["fingerprinted_pkg"]) != before
    assert code_fingerprint(["no_such_package_here"]) != before
