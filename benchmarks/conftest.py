"""Shared pieces of the benchmark suite: the data, one way to time a Case, and a summary.

Every benchmark times a :class:`fastmlp.timing.Case` (the same definitions that
``fastmlp bench`` and the CI guard use) with ``benchmark.pedantic``: explicit rounds, one
call per round, state reset by the untimed ``setup``. pytest-benchmark's own table shows the
seconds of one round; for the cases run on a subset (marked ``extrapolated`` in their name
and ``extra_info``) the summary printed at the end scales them to the whole epoch and gives
the ratios within each group.
"""

from collections import defaultdict

import pytest

import fastmlp
from fastmlp import datasets, timing

#: per group: [(name, seconds per epoch or per call, extrapolation factor, notes)]
_SUMMARY = defaultdict(list)


def case_id(name, batch_size, label):
    """A test id: ``label``, plus ``-extrapolated-from-N`` when case ``name`` (a backend or a
    peer) runs a subset of the 49,000 examples at minibatch size ``batch_size``."""
    n = timing.measured_examples(name, batch_size, timing.EXAMPLES)
    return label + (f"-extrapolated-from-{n}" if n < timing.EXAMPLES else "")


def require_backend(name):
    """Skip the calling benchmark when the fastmlp backend ``name`` is not available here."""
    if name not in fastmlp.BACKENDS:
        pytest.skip(f"the {name} backend is not available here")


def pytest_addoption(parser):
    parser.addoption("--bench-threads", type=int, default=None,
                     help="fastmlp benchmarks: at most this many threads in BLAS, OpenMP, numba "
                          "and the peers (default: every library's own, all cores); 1 gives "
                          "steadier figures on a busy machine")


def pytest_report_header(config):
    folder = datasets.fashion_mnist_dir()
    data = (f"Fashion-MNIST from {folder}" if folder else
            "synthetic data of Fashion-MNIST's shape (Fashion-MNIST is not installed)")
    threads = config.getoption("--bench-threads") or "default (all cores)"
    return [f"fastmlp benchmarks: data = {data}; threads = {threads}"]


@pytest.fixture(scope="session")
def threads(pytestconfig):
    return pytestconfig.getoption("--bench-threads")


_DATA = {}


@pytest.fixture(scope="session")
def load():
    """``load(dtype)``: the 49,000 training examples in that dtype (loaded once per dtype)."""
    def load(dtype):
        if dtype not in _DATA:
            _DATA[dtype] = timing.load_data(timing.EXAMPLES, dtype)
        return _DATA[dtype]
    return load


@pytest.fixture
def workload(load, threads):
    """``workload(dtype="float32", **settings)``: a :class:`fastmlp.timing.Workload` of the
    49,000 examples with ``settings`` (layers, activation, optimizer, batch_size, ...) and the
    suite's thread limit."""
    def workload(dtype="float32", **settings):
        return timing.Workload(load(dtype), threads=threads, **settings)
    return workload


@pytest.fixture(scope="session")
def peer_case():
    """``peer_case(name, work)``: the peer's :class:`fastmlp.timing.Case`, or a skip saying
    why it cannot run (its library is not installed, or it cannot run this workload)."""
    from fastmlp import peers

    def peer_case(name, work):
        try:
            return peers.epoch_case(name, work)
        except peers.PeerUnavailable as exc:
            pytest.skip(f"{name}: {exc}")
    return peer_case


@pytest.fixture
def time_case(benchmark, threads):
    """``time_case(case, rounds, work=None)``: time ``case`` with pedantic, fill extra_info
    (with ``work``, a :class:`fastmlp.timing.Workload`: its description and GFLOP/s)."""
    def time_case(case, rounds, work=None, **info):
        if case.warm is not None:
            case.warm()
        with timing.limit_threads(threads):
            benchmark.pedantic(case.run, setup=timing.settled(case.setup), rounds=rounds,
                               iterations=1)
        extra = benchmark.extra_info
        if work is not None:
            extra["workload"] = work.label()
            extra["data"] = work.data.source
        extra.update(info)
        extra.update({k: val for k, val in case.info.items() if val is not None})
        extra["measured_examples"] = case.measured
        extra["extrapolated"] = case.factor != 1.0
        extra["extrapolation_factor"] = case.factor
        if benchmark.stats is None:               # --benchmark-disable: ran once, untimed
            return None
        seconds = benchmark.stats.stats.min * case.factor
        extra["seconds_scaled"] = seconds
        extra["examples_per_second"] = case.examples / seconds
        if work is not None:
            extra["gflops"] = work.flops() / seconds / 1e9
        _SUMMARY[benchmark.group].append((benchmark.name, seconds, case.factor, case.info))
        return seconds
    return time_case


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    if not _SUMMARY:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fastmlp: best round, scaled to the whole workload; ratios per group")
    for group, rows in _SUMMARY.items():
        write(f"{group}:")
        best = min(seconds for _, seconds, _, _ in rows)
        for name, seconds, factor, info in sorted(rows, key=lambda r: r[1]):
            mark = f"  (extrapolated x{factor:.1f})" if factor != 1.0 else ""
            if info.get("compile_seconds") is not None:
                mark += f"  (compile {info['compile_seconds']:.2f} s excluded)"
            write(f"  {name:<58} {seconds:10.4f} s  {seconds / best:7.2f}x the fastest{mark}")
