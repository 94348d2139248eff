"""The benchmark harness and the regression guard: their logic, on tiny workloads.

Nothing here asserts a speed: the guard is shown to fail with a backend slowed on purpose
(it sleeps far longer than the work it replaces), and the checks are fed injected ratios.
"""

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import bench
from fastmlp.backends.numpy import NumpyBackend
from fastmlp.cli import main

THRESHOLDS = Path(__file__).resolve().parents[1] / "benchmarks" / "thresholds.json"

#: far longer than the loop backend needs for the tiny guard workload below (~15 ms for 64 examples)
SLOWDOWN = 0.1


class SlowedNumpy(NumpyBackend):
    """The numpy backend, deliberately slowed: it sleeps before every train_steps call."""

    def train_steps(self, *args, **kwargs):
        time.sleep(SLOWDOWN)
        return super().train_steps(*args, **kwargs)


def tiny_guard(**min_speedup):
    return {"min_speedup": {k.replace("_over_", "/"): val for k, val in min_speedup.items()},
            "workload": {"examples": 64, "rounds": 2, "batch_size": 32}}


def test_guard_fails_when_numpy_is_slowed():
    backends = {"numpy": SlowedNumpy(), "loop": fastmlp.get_backend("loop")}
    result = bench.run_guard(tiny_guard(numpy_over_loop=4), backends=backends)
    assert not result.ok
    assert result.ratios["numpy/loop"] < 1
    assert any(line.startswith("FAIL  numpy/loop") for line in result.lines)


def test_guard_command_exits_1_when_a_backend_is_slowed(tmp_path, monkeypatch, capsys):
    slowed = SlowedNumpy()
    real = bench.get_backend
    monkeypatch.setattr(bench, "get_backend",
                        lambda name: slowed if name == "numpy" else real(name))
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(tiny_guard(numpy_over_loop=4)))
    assert main(["bench", "--guard", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  numpy/loop" in out and "guard: FAILED" in out


def test_guard_skips_pairs_whose_backend_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "BACKENDS", ("loop",))
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(tiny_guard(numpy_over_loop=4)))
    assert main(["bench", "--guard", str(path)]) == 0
    out = capsys.readouterr().out
    assert "skip  numpy/loop: backend numpy not available" in out and "guard: passed" in out


def test_check_ratios_reads_like_the_thresholds():
    minimums = {"numpy/loop": 4.0, "numba/numpy": 2.5, "numba/loop": None}
    failed, lines = bench.check_ratios({"numpy/loop": 9.0, "numba/numpy": 1.5, "numba/loop": 13.5},
                                       minimums)
    assert failed == ["numba/numpy"]
    assert lines[0].startswith("ok    numpy/loop: 9.00x >= 4x")
    assert lines[1].startswith("FAIL  numba/numpy: 1.50x < 2.5x")
    assert lines[2].startswith("info  numba/loop: 13.50x")
    failed, lines = bench.check_ratios({"numpy/loop": 4.0}, minimums, available={"numpy", "loop"})
    assert failed == []
    assert lines[1] == ("skip  numba/numpy: backend numba not available here "
                        "(minimum 2.5x not checked)")


def test_the_committed_thresholds_are_valid():
    minimums, workload = bench.read_thresholds(THRESHOLDS)
    assert minimums["numpy/loop"] > 1
    assert "numba/numpy" in minimums
    assert workload["rounds"] >= 3 and workload["threads"] == 1


@pytest.mark.parametrize("document, message", [
    ({"numpy/loop": 4}, "'min_speedup' object"),
    ({"min_speedup": {"numpy-loop": 4}}, "must be 'fast/slow'"),
    ({"min_speedup": {"numpy/numpy": 4}}, "must be 'fast/slow'"),
    ({"min_speedup": {"cuda/numpy": 4}}, "unknown backend 'cuda'"),
    ({"min_speedup": {"numpy/loop": -1}}, "positive number or null"),
    ({"min_speedup": {"numpy/loop": True}}, "positive number or null"),
    ({"min_speedup": {"numpy/loop": "5"}}, "positive number or null"),
    ({"min_speedup": {}, "workload": {"epochs": 3}}, "unknown workload setting 'epochs'"),
    ({"min_speedup": {}, "workload": {"rounds": 0}}, "workload.rounds must be >= 1"),
    ({"min_speedup": {}, "workload": {"dtype": "float16"}}, "workload.dtype='float16'"),
])
def test_bad_thresholds_are_refused_with_a_clear_message(document, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        bench.read_thresholds(document)


def test_bad_thresholds_file_gives_a_message_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "thresholds.json"
    path.write_text("{not json")
    assert main(["bench", "--guard", str(path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["bench", "--guard", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the thresholds file" in capsys.readouterr().err


def test_epoch_flops_follow_the_spec():
    d, h, m = bench.LAYERS
    assert bench.epoch_flops(1, 1) == 2 * (d * h + h * m) + 2 * (h * d + 2 * m * h) + 2 * (
        h * (d + 1) + m * (h + 1))
    assert 10.0e9 < bench.epoch_flops(49_000, 32) < 10.4e9


def test_subsets_are_whole_minibatches_and_marked():
    assert bench.measured_examples("numpy", 32, 49_000) == 49_000
    assert bench.measured_examples("loop", 20, 49_000) == 1040        # 52 minibatches of 20
    assert bench.measured_examples("loop", 256, 49_000) == 1024
    assert bench.measured_examples("numpy", 1, 49_000) == 2048
    assert bench.measured_examples("loop", 32, 100) == 100            # never more than the epoch
    work = bench.Workload(bench.load_data(3000, "float64", "synthetic"))
    case = bench.backend_epoch("loop", work)
    assert (case.measured, case.examples, case.factor) == (1024, 3000, 3000 / 1024)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_timed_epoch_is_the_trainers_epoch(backend, dtype):
    data = bench.load_data(100, dtype, "synthetic")
    work = bench.Workload(data)
    case = bench.backend_epoch(backend, work, measured=100)
    (params,), _ = case.setup()
    case.run(params)
    model = fastmlp.MLP(bench.LAYERS, l1=work.l1, l2=work.l2, dtype=dtype, seed=work.seed)
    fastmlp.train(model, (data.X, data.y), backend=backend, epochs=1, batch_size=work.batch_size,
                  lr=work.lr, seed=work.seed, progress=False)
    for key, p in model.params.items():
        np.testing.assert_array_equal(params[key], p)
        assert params[key].dtype == np.dtype(dtype)


def test_time_cases_interleaves_rounds_and_keeps_the_best():
    calls = []

    def case(name):
        return bench.Case(name, "backend", lambda tag: calls.append(tag),
                          lambda: ((name,), {}), measured=10, examples=40,
                          warm=lambda: calls.append(f"warm {name}"))

    timings = bench.time_cases([case("a"), case("b")], rounds=2)
    assert calls == ["warm a", "warm b", "a", "b", "a", "b"]
    t = timings["a"]
    assert len(t.rounds) == 2 and t.seconds == min(t.rounds) * 4
    bench.time_cases([timings["b"].case], rounds=3, timings=timings)
    assert len(timings["b"].rounds) == 5 and calls[-1] == "b"


def test_report_as_table_and_json(capsys):
    assert main(["bench", "--backends", "numpy", "loop", "--no-peers", "--no-gemm",
                 "--examples", "128", "--rounds", "1", "--data", "synthetic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"cpu", "cores", "numpy", "numba", "blas"} <= set(report["machine"])
    rows = {r["name"]: r for r in report["results"]}
    assert rows["loop"]["extrapolated"] is False      # 128 examples: the whole epoch
    assert rows["numpy"]["speedup_vs_loop"] > 0 and "speedup_vs_numpy" in rows["loop"]
    table = bench.format_report(report)
    assert "s/epoch" in table and "x loop" in table and "synthetic data" in table


def test_bench_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        bench.run_bench(backends=["cuda"])
    with pytest.raises(ValueError, match="unknown peer 'tensorflow'"):
        bench.run_bench(backends=["numpy"], peers=["tensorflow"])
    with pytest.raises(ValueError, match="source must be"):
        bench.load_data(10, "float32", "imagenet")
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        bench.time_cases([], rounds=0)


def test_first_call_runs_in_a_fresh_process(tmp_path):
    out = bench.first_call("numpy", "float32", "train", cache_dir=tmp_path)
    assert out["import_seconds"] > 0 and out["first_train_seconds"] > 0
    with pytest.raises(ValueError, match="what must be"):
        bench.first_call("numpy", "float32", "compile")


def test_importing_the_harness_imports_no_peer_library():
    import subprocess

    code = ("import sys, fastmlp.bench, fastmlp.peers; "
            "print(sorted(m for m in ('torch', 'jax', 'sklearn', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
