"""The benchmark harness, the peers and the regression guard: their logic, on tiny workloads.

Nothing here asserts a speed: the guard is shown to fail with a backend slowed on purpose
(it sleeps far longer than the work it replaces), and the checks are fed injected ratios.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RTOL_F32, rel_err

import fastmlp
from fastmlp import bench, peers, timing
from fastmlp.backends.numpy import NumpyBackend
from fastmlp.cli import main

THRESHOLDS = Path(__file__).resolve().parents[1] / "benchmarks" / "thresholds.json"

#: far longer than the loop backend needs for the tiny guard workload below (~15 ms for 64 examples)
SLOWDOWN = 0.1

#: a small network of every kind of layer the timed cases handle: two hidden layers
SMALL_DEEP = (784, 8, 6, 10)


class SlowedNumpy(NumpyBackend):
    """The numpy backend, deliberately slowed: it sleeps before every train_steps call."""

    def train_steps(self, *args, **kwargs):
        time.sleep(SLOWDOWN)
        return super().train_steps(*args, **kwargs)


def tiny_guard(workloads=None, **min_speedup):
    """A thresholds document on 64 examples; ``numpy_over_loop_at_deep`` is "numpy/loop@deep"."""
    document = {"min_speedup": {k.replace("_over_", "/").replace("_at_", "@"): val
                                for k, val in min_speedup.items()},
                "workload": {"examples": 64, "rounds": 2, "batch_size": 32}}
    if workloads:
        document["workloads"] = workloads
    return document


# -- the guard ------------------------------------------------------------------------------
def test_guard_fails_when_numpy_is_slowed():
    backends = {"numpy": SlowedNumpy(), "loop": fastmlp.get_backend("loop")}
    result = bench.run_guard(tiny_guard(numpy_over_loop=4), backends=backends)
    assert not result.ok
    assert result.ratios["numpy/loop"] < 1
    assert any(line.startswith("FAIL  numpy/loop") for line in result.lines)


def test_guard_measures_a_ratio_on_its_own_workload():
    backends = {"numpy": SlowedNumpy(), "loop": fastmlp.get_backend("loop")}
    deep = {"deep": {"hidden": [16, 8], "activation": "tanh", "optimizer": "adam"}}
    logged = []
    result = bench.run_guard(tiny_guard(deep, numpy_over_loop=None, numpy_over_loop_at_deep=4),
                             backends=backends, log=logged.append)
    assert not result.ok
    assert set(result.ratios) == {"numpy/loop", "numpy/loop@deep"}
    assert any(line.startswith("info  numpy/loop: ") for line in result.lines)
    assert any(line.startswith("FAIL  numpy/loop@deep") for line in result.lines)
    assert any("numpy@deep:" in line for line in result.lines)
    assert any(line.startswith("guard@deep:") and "(784, 16, 8, 10) tanh" in line
               and "adam" in line for line in logged)


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
    minimums = {"numpy/loop": 4.0, "numba/numpy": 2.5, "numba/loop": None,
                "numba/numpy@deep": 3.0}
    failed, lines = bench.check_ratios({"numpy/loop": 9.0, "numba/numpy": 1.5, "numba/loop": 13.5,
                                        "numba/numpy@deep": 3.5}, minimums)
    assert failed == ["numba/numpy"]
    assert lines[0].startswith("ok    numpy/loop: 9.00x >= 4x")
    assert lines[1].startswith("FAIL  numba/numpy: 1.50x < 2.5x")
    assert lines[2].startswith("info  numba/loop: 13.50x")
    assert lines[3].startswith("ok    numba/numpy@deep: 3.50x >= 3x")
    failed, lines = bench.check_ratios({"numpy/loop": 4.0}, minimums, available={"numpy", "loop"})
    assert failed == []
    assert lines[1] == ("skip  numba/numpy: backend numba not available here "
                        "(minimum 2.5x not checked)")
    assert lines[3].startswith("skip  numba/numpy@deep: backend numba not available")


def test_the_committed_thresholds_are_valid():
    minimums, workloads = bench.read_thresholds(THRESHOLDS)
    assert minimums["numpy/loop"] > 1
    assert "numba/numpy" in minimums
    deep = [key for key in minimums if key.startswith("numba/numpy@")]
    assert deep and minimums[deep[0]] > 1
    assert workloads[bench.parse_ratio(deep[0])[2]]["hidden"] == [256, 128]
    for workload in workloads.values():
        assert workload["rounds"] >= 3 and workload["threads"] == 1


def test_a_ratio_workload_completes_the_default_one():
    _, workloads = bench.read_thresholds(tiny_guard({"deep": {"hidden": [32, 16]}},
                                                    numpy_over_loop_at_deep=2))
    assert workloads["deep"]["hidden"] == [32, 16]
    assert workloads["deep"]["examples"] == 64           # from "workload"
    assert workloads["deep"]["activation"] == "relu"     # from GUARD_WORKLOAD
    assert bench.parse_ratio("numba/numpy@deep") == ("numba", "numpy", "deep")
    assert bench.parse_ratio("numba/numpy") == ("numba", "numpy", bench.DEFAULT_WORKLOAD)


@pytest.mark.parametrize("document, message", [
    ({"numpy/loop": 4}, "'min_speedup' object"),
    ({"min_speedup": {"numpy-loop": 4}}, "must be 'fast/slow'"),
    ({"min_speedup": {"numpy/numpy": 4}}, "must be 'fast/slow'"),
    ({"min_speedup": {"numpy/loop/numba": 4}}, "must be 'fast/slow'"),
    ({"min_speedup": {"cuda/numpy": 4}}, "unknown backend 'cuda'"),
    ({"min_speedup": {"numpy/loop": -1}}, "positive number or null"),
    ({"min_speedup": {"numpy/loop": True}}, "positive number or null"),
    ({"min_speedup": {"numpy/loop": "5"}}, "positive number or null"),
    ({"min_speedup": {}, "workload": {"epochs": 3}}, "unknown workload setting 'epochs'"),
    ({"min_speedup": {}, "workload": {"rounds": 0}}, "workload.rounds must be >= 1"),
    ({"min_speedup": {}, "workload": {"dtype": "float16"}}, "workload.dtype='float16'"),
    ({"min_speedup": {"numba/numpy@deep": 2}}, "names the workload 'deep'"),
    ({"min_speedup": {}, "workloads": [1]}, "'workloads' must be an object"),
    ({"min_speedup": {}, "workloads": {"default": {}}}, "workload name 'default'"),
    ({"min_speedup": {}, "workloads": {"deep": 3}}, "workloads['deep'] must be a JSON object"),
    ({"min_speedup": {}, "workloads": {"deep": {"hidden": 256}}}, "hidden must be a list"),
    ({"min_speedup": {}, "workloads": {"deep": {"hidden": [256, 0]}}}, "layers[2] must be at least 1"),
    ({"min_speedup": {}, "workloads": {"deep": {"hidden": [8], "activation": "gelu"}}},
     "activation='gelu' is not an activation"),
    ({"min_speedup": {}, "workloads": {"deep": {"hidden": [8], "activation": ["relu", "tanh"]}}},
     "lists 2 activation(s) but the network has 1 hidden layer(s)"),
    ({"min_speedup": {}, "workloads": {"deep": {"optimizer": "rmsprop"}}},
     "optimizer='rmsprop' is not allowed"),
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


# -- what is timed --------------------------------------------------------------------------
def test_epoch_flops_follow_the_spec():
    d, h, m = timing.LAYERS
    assert timing.example_flops((d, h, m)) == 2 * (d * h + h * m) * 2 + 2 * (m * h)
    # the spec: "(784, 64, 10): ≈ 10.2 GFLOP per epoch; (784, 256, 128, 10): ≈ 49 GFLOP"
    assert timing.epoch_flops(timing.LAYERS, 49_000) == pytest.approx(10.2e9, rel=0.02)
    assert timing.epoch_flops(timing.DEEP_LAYERS, 49_000) == pytest.approx(49e9, rel=0.02)
    assert timing.example_flops((784, 10)) == 4 * 784 * 10     # no hidden layer: no dJ/dx
    work = timing.Workload(timing.load_data(100, "float32", "synthetic"), SMALL_DEEP)
    assert work.flops() == 100 * timing.example_flops(SMALL_DEEP)


def test_subsets_are_whole_minibatches_and_marked():
    assert timing.measured_examples("numpy", 32, 49_000) == 49_000
    assert timing.measured_examples("loop", 20, 49_000) == 1040        # 52 minibatches of 20
    assert timing.measured_examples("loop", 256, 49_000) == 1024
    assert timing.measured_examples("numpy", 1, 49_000) == 2048
    assert timing.measured_examples("loop", 32, 100) == 100            # never more than the epoch
    assert timing.measured_examples("jax", 1, 49_000) == 49_000        # one compiled epoch
    work = timing.Workload(timing.load_data(3000, "float64", "synthetic"))
    case = timing.backend_epoch("loop", work)
    assert (case.measured, case.examples, case.factor) == (1024, 3000, 3000 / 1024)


def test_the_workload_defaults_and_its_checks():
    data = timing.load_data(64, "float32", "synthetic")
    assert timing.Workload(data).lr == 0.1
    assert timing.Workload(data, batch_size=8).lr == pytest.approx(0.025)
    assert timing.Workload(data, optimizer="adam").lr == 1e-3
    work = timing.Workload(data, SMALL_DEEP, ("tanh", "logistic"), "glorot", "nesterov")
    assert work.activations == ("tanh", "logistic") and work.l1 == (1e-4,) * 3
    assert "(784, 8, 6, 10) tanh/logistic, glorot init, nesterov (lr=0.01, momentum=0.9)" \
        in work.label()
    with pytest.raises(ValueError, match="layers\\[0\\]=100 but the data has 784 features"):
        timing.Workload(data, (100, 10))
    with pytest.raises(ValueError, match="not an activation"):
        timing.Workload(data, SMALL_DEEP, "gelu")
    with pytest.raises(ValueError, match="is not an optimizer"):
        timing.Workload(data, optimizer="rmsprop")


@pytest.mark.parametrize("layers, activation, optimizer", [
    (timing.LAYERS, "relu", "sgd"),
    (SMALL_DEEP, "tanh", "momentum"),
    (SMALL_DEEP, ("logistic", "relu"), "adam"),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_timed_epoch_is_the_trainers_epoch(backend, dtype, layers, activation, optimizer):
    data = timing.load_data(100, dtype, "synthetic")
    work = timing.Workload(data, layers, activation, optimizer=optimizer)
    case = timing.backend_epoch(backend, work, measured=100)
    (model, state), _ = case.setup()
    case.run(model, state)
    trained = work.model()
    fastmlp.train(trained, (data.X, data.y), backend=backend, epochs=1,
                  batch_size=work.batch_size, lr=work.lr, optimizer=work.optimizer,
                  seed=work.seed, progress=False)
    np.testing.assert_array_equal(model.theta, trained.theta)
    assert model.theta.dtype == np.dtype(dtype)


def _peer_weights(peer, case):
    """Run one round of a peer's case; its weights after it, ``[(W, b), ...]`` in NumPy."""
    args, kwargs = case.setup()
    out = case.run(*args, **kwargs)
    if peer == "torch":
        from torch import nn

        return [(m.weight.detach().numpy(), m.bias.detach().numpy())
                for m in args[0] if isinstance(m, nn.Linear)]
    return [(np.asarray(W), np.asarray(b)) for W, b in out]


@pytest.mark.parametrize("optimizer, activation", [
    ("sgd", "relu"), ("momentum", "logistic"), ("nesterov", "tanh"), ("adam", "identity")])
@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_the_peers_train_the_same_network(peer, optimizer, activation):
    """Same initial weights, minibatches, optimizer and rate: the weights fastmlp's numpy
    backend reaches (four minibatches, the last one smaller), to float32 rounding."""
    if peers.missing(peer):
        pytest.skip(f"{' and '.join(peers.missing(peer))} not installed (pip install "
                    "'fastmlp[bench]')")
    work = timing.Workload(timing.load_data(100, "float32", "synthetic"), SMALL_DEEP,
                           activation, optimizer=optimizer)
    got = _peer_weights(peer, peers.epoch_case(peer, work))
    model = work.model()
    state = work.optimizer.init_state(model.n_params, model.dtype)
    fastmlp.get_backend("numpy").train_steps(model, work.data.X, work.data.y, work.order(),
                                             work.batch_size, work.lr, state)
    assert model.theta.tolist() != work.model().theta.tolist()      # it did train
    for (W, b), (W_ref, b_ref) in zip(got, model.weights()):
        assert W.dtype == np.float32
        assert rel_err(W, W_ref) < RTOL_F32 and rel_err(b, b_ref) < RTOL_F32


def test_sklearn_runs_what_it_can_and_says_what_it_cannot():
    if peers.missing("sklearn"):
        pytest.skip("scikit-learn is not installed")
    data = timing.load_data(64, "float32", "synthetic")
    case = peers.epoch_case("sklearn", timing.Workload(data, SMALL_DEEP, "tanh",
                                                       optimizer="adam"))
    (model,), _ = case.setup()
    case.run(model)
    assert model.hidden_layer_sizes == (8, 6) and model.activation == "tanh"
    assert model.solver == "adam" and model.alpha == pytest.approx(2 * 1e-4 * 32)
    assert "L2 only" in case.info["note"] and "epsilon" in case.info["note"]
    with pytest.raises(peers.PeerUnavailable, match="one activation for every hidden layer"):
        peers.epoch_case("sklearn", timing.Workload(data, SMALL_DEEP, ("tanh", "relu")))
    with pytest.raises(peers.PeerUnavailable, match="one L2 coefficient"):
        peers.epoch_case("sklearn", timing.Workload(data, SMALL_DEEP, l2=(1e-4, 0, 0)))


def test_time_cases_interleaves_rounds_and_keeps_the_best():
    calls = []

    def case(name):
        return timing.Case(name, "backend", lambda tag: calls.append(tag),
                           lambda: ((name,), {}), measured=10, examples=40,
                           warm=lambda: calls.append(f"warm {name}"))

    timings = timing.time_cases([case("a"), case("b")], rounds=2)
    assert calls == ["warm a", "warm b", "a", "b", "a", "b"]
    t = timings["a"]
    assert len(t.rounds) == 2 and t.seconds == min(t.rounds) * 4
    timing.time_cases([timings["b"].case], rounds=3, timings=timings)
    assert len(timings["b"].rounds) == 5 and calls[-1] == "b"


def test_each_timed_round_starts_after_a_rest(monkeypatch):
    events = []
    monkeypatch.setattr(timing, "SETTLE_SECONDS", 0.25)
    monkeypatch.setattr(timing.time, "sleep", lambda s: events.append(("rest", s)))
    case = timing.Case("a", "backend", lambda: events.append("run"),
                       lambda: (events.append("setup") or ((), {})), measured=1, examples=1)
    timing.time_cases([case], rounds=2)
    assert events == ["setup", ("rest", 0.25), "run"] * 2


# -- the peak -----------------------------------------------------------------------------
def test_the_peak_is_measured_unpinned_and_pinned_in_children_only():
    pinned = {"OPENBLAS_CORETYPE": "Haswell", "PATH": "/bin"}
    plan = {name: env for name, _, _, env in bench.peak_plan(pinned, threads=1, jax=False)}
    assert list(plan) == ["numpy-unpinned", "numpy-pinned"]
    assert "OPENBLAS_CORETYPE" not in plan["numpy-unpinned"]
    assert plan["numpy-pinned"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert plan["numpy-unpinned"]["OPENBLAS_NUM_THREADS"] == "1"
    assert pinned == {"OPENBLAS_CORETYPE": "Haswell", "PATH": "/bin"}    # left as it was
    assert [name for name, *_ in bench.peak_plan({"PATH": "/bin"}, jax=False)] == [
        "numpy-unpinned"]
    if not peers.missing("jax"):
        jax_env = bench.peak_plan({}, threads=1)[-1]
        assert jax_env[0] == "jax" and jax_env[3]["NPROC"] == "1"


def test_measure_peak_reports_the_best_and_what_it_was():
    peak = bench.measure_peak(threads=1, n=64, rounds=1, jax=False)
    names = [m["name"] for m in peak["measurements"]]
    assert names[0] == "numpy-unpinned" and peak["best"] in names
    assert peak["gflops"] == max(m["gflops"] for m in peak["measurements"])
    assert "OPENBLAS_CORETYPE removed" in peak["measurements"][0]["label"]
    # measured again (fastmlp bench does so after the cases): each rate keeps its best
    peak["measurements"][0]["gflops"] = 1e9
    again = bench.measure_peak(threads=1, n=64, rounds=1, jax=False, previous=peak)
    assert again["gflops"] == 1e9 and again["best"] == "numpy-unpinned"
    assert again["sessions"] == 2


# -- fastmlp bench --------------------------------------------------------------------------
def test_report_as_table_and_json(capsys):
    assert main(["bench", "--backends", "numpy", "loop", "--no-peers", "--no-gemm",
                 "--examples", "128", "--rounds", "1", "--data", "synthetic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"cpu", "cores", "numpy", "numba", "blas"} <= set(report["machine"])
    assert report["workload"]["layers"] == [784, 64, 10]
    assert report["workload"]["optimizer"] == {"name": "sgd"}
    rows = {r["name"]: r for r in report["results"]}
    assert rows["loop"]["extrapolated"] is False      # 128 examples: the whole epoch
    assert rows["numpy"]["speedup_vs_loop"] > 0 and "speedup_vs_numpy" in rows["loop"]
    table = bench.format_report(report)
    assert "s/epoch" in table and "x loop" in table and "synthetic data" in table
    assert "% peak" not in table


def test_a_deep_workload_with_another_optimizer(capsys):
    assert main(["bench", "--backends", "numpy", "--no-peers", "--no-gemm", "--examples", "96",
                 "--rounds", "1", "--data", "synthetic", "--hidden", "16", "8", "--activation",
                 "tanh", "relu", "--init", "glorot", "--optimizer", "nesterov", "--momentum",
                 "0.5", "--lr", "0.02", "--l1", "0", "--batch-size", "16"]) == 0
    table = capsys.readouterr().out
    assert ("layers (784, 16, 8, 10), tanh/relu, glorot init, nesterov (lr=0.02, "
            "momentum=0.5), K=16") in table
    assert "l1=0, l2=0.0001" in table


def test_the_report_shows_the_peak_and_the_fraction_of_it():
    report = bench.run_bench(["numpy"], (), examples=64, rounds=1, source="synthetic",
                             peak=False)
    report["peak"] = {"gflops": 100.0, "best": "jax", "size": 4096, "threads": None,
                      "openblas_coretype": "Haswell", "sessions": 2, "measurements": [
                          {"name": "numpy-unpinned", "label": "unpinned", "gflops": 80.0},
                          {"name": "numpy-pinned", "label": "pinned", "gflops": 40.0},
                          {"name": "jax", "label": "jnp.dot", "gflops": 100.0}]}
    table = bench.format_report(report)
    assert "peak: 100.0 GFLOP/s" in table and "% peak" in table
    assert "measured before and after the cases" in table
    assert re.search(r"jnp\.dot\s+100\.0 GFLOP/s  <- the peak", table)
    assert re.search(r"pinned\s+40\.0 GFLOP/s\n", table)
    numpy_row = next(line for line in table.splitlines() if line.startswith("numpy "))
    gflops = report["results"][0]["gflops"]
    assert numpy_row.split()[-2:] == [f"{gflops:.2f}", f"{gflops:.1f}"]   # % of 100 GFLOP/s


def test_bench_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        bench.run_bench(backends=["cuda"])
    with pytest.raises(ValueError, match="unknown peer 'tensorflow'"):
        bench.run_bench(backends=["numpy"], peers=["tensorflow"])
    with pytest.raises(ValueError, match="activation='gelu' is not an activation"):
        bench.run_bench(backends=["numpy"], peers=(), activation="gelu")
    with pytest.raises(ValueError, match="source must be"):
        timing.load_data(10, "float32", "imagenet")
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        timing.time_cases([], rounds=0)


def test_first_call_runs_in_a_fresh_process(tmp_path):
    out = bench.first_call("numpy", "float32", "train", cache_dir=tmp_path)
    assert out["import_seconds"] > 0 and out["first_train_seconds"] > 0
    with pytest.raises(ValueError, match="what must be"):
        bench.first_call("numpy", "float32", "compile")


def test_importing_the_harness_imports_no_peer_library_and_no_cycle():
    code = ("import sys, fastmlp.peers; cycle = 'fastmlp.bench' in sys.modules; "
            "import fastmlp.bench; "
            "print(sorted(m for m in ('torch', 'jax', 'optax', 'sklearn', 'matplotlib', "
            "'fastmlp.cli') if m in sys.modules), cycle)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] False"
