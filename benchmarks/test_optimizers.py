"""What an optimizer costs: one epoch with SGD, momentum and Adam, K=32, float32, on the
seed's network (784, 64, 10) and on the deep one (784, 256, 128, 10), ReLU.

The numba backend with each optimizer, and PyTorch and JAX (optax) with Adam and with SGD,
so that each library's cost of Adam over SGD reads in the same table (the spec: JAX's
(784, 64, 10) epoch takes about 1.3x its SGD epoch with Adam). Each optimizer runs at its
default rate (:data:`fastmlp.timing.DEFAULT_LR`).
"""

import pytest
from conftest import require_backend

from fastmlp import peers, timing

NETWORKS = (timing.LAYERS, timing.DEEP_LAYERS)
#: (case, optimizer)
CASES = ([("numba", opt) for opt in ("sgd", "momentum", "adam")]
         + [(peer, opt) for peer in ("torch", "jax") for opt in ("sgd", "adam")])


@pytest.mark.parametrize("name, optimizer", [pytest.param(n, o, id=f"{n}-{o}") for n, o in CASES])
@pytest.mark.parametrize("layers", [pytest.param(layers, id="-".join(map(str, layers)))
                                    for layers in NETWORKS])
def test_optimizer_epoch(benchmark, time_case, workload, peer_case, layers, name, optimizer):
    if name not in peers.PEERS:
        require_backend(name)
    benchmark.group = f"optimizers: {layers} relu, 49,000 examples, K=32, float32"
    work = workload(layers=layers, optimizer=optimizer)
    case = (peer_case(name, work) if name in peers.PEERS
            else timing.backend_epoch(name, work))
    time_case(case, rounds=3, work=work, optimizer=optimizer)
