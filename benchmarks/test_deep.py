"""One epoch of the deep network (784, 256, 128, 10), ReLU and tanh, K=32 and K=256, float32:
every backend and every peer library in one group per activation and K, so that the ratios
read down a column; and the compiled backends in float32 and float64 in one group (the cost
of float64, measured in one run rather than across two ``fastmlp bench`` runs).

The spec's figures for this network (a quiet 2-core AMD EPYC Zen 5, ReLU): JAX 0.247 s at
K=32 (42 % of the peak), 0.183 s at K=256; PyTorch about 1.1 s at K=32. Peers that are not
installed, or cannot run a case, are skipped with the reason.
"""

import pytest
from conftest import case_id, require_backend

import fastmlp
from fastmlp import peers, timing

ACTIVATIONS = ("relu", "tanh")
BATCH_SIZES = (32, 256)


def _cases():
    for activation in ACTIVATIONS:
        for K in BATCH_SIZES:
            for name in (*fastmlp.BACKENDS, *peers.PEERS):
                yield pytest.param(name, activation, K,
                                   id=case_id(name, K, f"{name}-{activation}-K{K}"))


@pytest.mark.parametrize("name, activation, batch_size", list(_cases()))
def test_deep_epoch(benchmark, time_case, workload, peer_case, name, activation, batch_size):
    benchmark.group = (f"deep epoch: {timing.DEEP_LAYERS} {activation}, 49,000 examples, "
                       f"K={batch_size}, float32")
    work = workload(layers=timing.DEEP_LAYERS, activation=activation, batch_size=batch_size)
    case = (peer_case(name, work) if name in peers.PEERS
            else timing.backend_epoch(name, work))
    time_case(case, rounds=3, work=work)


@pytest.mark.parametrize("name", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deep_epoch_dtype(benchmark, time_case, workload, name, dtype):
    require_backend(name)
    benchmark.group = (f"deep epoch by dtype: {timing.DEEP_LAYERS} relu, 49,000 examples, "
                       "K=32")
    work = workload(dtype, layers=timing.DEEP_LAYERS)
    time_case(timing.backend_epoch(name, work), rounds=3, work=work)
