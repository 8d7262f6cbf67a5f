"""Benchmark maths (pure) and `tma-spark bench` end to end on Cora."""

import json

import pytest

from tma_spark.bench.report import (aggregate, curves_figure, render_markdown, render_suite_markdown, speedups,
                                    time_to_target)
from tma_spark.errors import ConfigError


def test_time_to_target_is_the_first_crossing():
    curve = [(1.0, 0.5), (2.0, 0.79), (3.0, 0.8), (4.0, 0.7)]
    assert time_to_target(curve, 0.8) == 3.0
    assert time_to_target(curve, 0.81) is None
    assert time_to_target([], 0.1) is None


def _run(method, seed, test, ttt, val=0.9):
    return {"method": method, "seed": seed, "test": test, "best_val": val, "time_to_target": ttt,
            "total_steps": 100, "rounds": 5, "curve": [(1.0, val - 0.1), (2.0, val)]}


def test_aggregate_speedups_and_report_state_misses_plainly():
    runs = [_run("central", 0, 0.80, 40.0), _run("central", 1, 0.82, 60.0),
            _run("psgd-pa", 0, 0.78, 30.0), _run("psgd-pa", 1, 0.76, None),
            _run("random", 0, 0.81, 10.0), _run("random", 1, 0.81, 14.0)]
    rows = {r["method"]: r for r in aggregate(runs)}
    assert rows["central"]["test_mean"] == pytest.approx(0.81) and rows["central"]["test_std"] == pytest.approx(0.01414, 1e-3)
    assert rows["central"]["time_to_target_mean"] == 50.0
    assert rows["psgd-pa"]["time_to_target_mean"] is None and rows["psgd-pa"]["reached_target"] == 1
    ups = speedups(list(rows.values()))
    assert ups["fastest_baseline"] == "central"  # psgd-pa missed the target in one seed
    assert ups["best_tma"] == "random" and ups["best_tma_speedup"] == pytest.approx(50.0 / 12.0)
    text = render_markdown(list(rows.values()), ups, {"metric": "accuracy", "seeds": 2})
    assert "| random | 0.8100 ± 0.0000 |" in text
    assert "random test accuracy 0.8100 ≥ psgd-pa 0.7700: met" in text
    assert "within 0.5 points of central (0.8100): met" in text
    assert "4.167x (target ≥ 2.31x): met" in text
    slow = speedups([{**rows["random"], "time_to_target_mean": 40.0}, rows["central"]])
    assert "MISSED" in render_markdown([rows["central"]], slow, {"metric": "accuracy"})
    assert curves_figure(runs).axes[0].get_legend() is not None


def test_suite_summary_has_every_dataset_and_its_verdicts():
    def result(name, metric, tma_test):
        rows = aggregate([_run("central", 0, 0.80, 40.0), _run("llcg", 0, 0.70, None),
                          _run("random", 0, tma_test, 10.0)])
        return {"meta": {"dataset": f"/lakes/{name}", "metric": metric, "budget": 60, "seeds": 1, "parts": 4,
                         "round_seconds": 10, "command": f"tma-spark bench --lake {name}", "machine": "m"},
                "rows": rows, "speedups": speedups(rows)}

    text = render_suite_markdown({"a": result("a", "accuracy", 0.81), "b": result("b", "mrr", 0.60)})
    assert "| a | accuracy | random | 0.8100 ± 0.0000 | 10.0 ± 0.0 | 1/1 | 4.00x (vs central) | 100 |" in text
    assert "| b | mrr | llcg | 0.7000 ± 0.0000 | — | 0/1 | — | 100 |" in text
    assert "- random within 0.5 points of central (0.8000): met" in text
    assert "- random test mrr 0.6000 < llcg 0.7000: MISSED" in text  # dataset b's verdicts follow b's header
    assert text.index("**b**") < text.index("random test mrr 0.6000")


def test_bench_config_validation(tmp_path):
    from tma_spark.bench import BenchConfig

    for kwargs, fragment in [({"methods": ("random",)}, "must include central"),
                             ({"methods": ("central", "gossip")}, "gossip not supported"),
                             ({"model": "transformer"}, "--model 'transformer'"),
                             ({"budget": 0}, "--budget 0 must be positive"), ({"seeds": 0}, "--seeds 0"),
                             ({"super_method": "louvain"}, "--super-method .louvain. is not one of lpa, metis"),
                             ({"overwrite": True, "resume": True}, "--overwrite and --resume contradict")]:
        with pytest.raises(ConfigError, match=fragment):
            BenchConfig(lake="L", out=str(tmp_path / "b"), **kwargs).validate()


@pytest.mark.spark
def test_bench_cli_on_cora_writes_results_report_and_curves_and_resumes_seeds_and_overwrites(cli, cora_lake, tmp_path):
    out = tmp_path / "bench"
    args = ("bench", "--lake", cora_lake, "--methods", "central,ddp,random", "--budget", "4", "--parts", "2",
            "-T", "2", "--hidden", "32", "--out", out)
    code, stdout, err = cli(*args, "--seeds", "1")
    assert code == 0, err[-3000:]
    first = json.loads((out / "results.json").read_text())["runs"]
    # seed 1 in a second invocation (run_suite.sh gives each seed a fresh Spark application this way)
    code, stdout, err = cli(*args, "--seeds", "2", "--resume")
    assert code == 0, err[-3000:]
    assert "--resume keeps seed(s) 0" in err
    results = json.loads((out / "results.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in results["runs"]) == [
        ("central", 0), ("central", 1), ("ddp", 0), ("ddp", 1), ("random", 0), ("random", 1)]
    assert [r for r in results["runs"] if r["seed"] == 0] == first  # kept, not retrained
    assert all(r["curve"] and r["test"] > 0.3 for r in results["runs"])
    assert {r["method"] for r in results["rows"]} == {"central", "ddp", "random"}
    assert all(r["seeds"] == 2 for r in results["rows"])
    report = (out / "report.md").read_text()
    assert "| central |" in report and "| ddp |" in report and "| random |" in report and "speed-up" in report
    assert (out / "curves.png").stat().st_size > 10_000
    # other settings are not comparable: refused, and the results stay as they were
    code, stdout, err = cli(*args[:-4], "--hidden", "64", "--out", out, "--seeds", "3", "--resume")
    assert code != 0 and "was made with other settings (hidden 32 -> 64)" in err
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]
    # --overwrite runs in a hidden sibling and swaps it in at the end: the new results replace the old ones
    code, stdout, err = cli("bench", "--lake", cora_lake, "--methods", "central", "--budget", "2", "--parts", "2",
                            "-T", "2", "--hidden", "32", "--out", out, "--seeds", "1", "--overwrite")
    assert code == 0, err[-3000:]
    replaced = json.loads((out / "results.json").read_text())
    assert [(r["method"], r["seed"]) for r in replaced["runs"]] == [("central", 0)]
    assert replaced["meta"]["out"] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench"]  # no staging folder left beside it
