"""The core workload in PyTorch, JAX and scikit-learn, in the same group as fastmlp's epoch
(one epoch, 49,000 examples, K=32, float32), so that the table reads as ratios.

Skipped with a reason when the library is not installed: ``pip install 'fastmlp[bench]'``.
"""

import pytest

from fastmlp import peers


@pytest.mark.parametrize("peer", list(peers.PEERS))
def test_peer_epoch(benchmark, time_case, workload, peer_case, peer):
    benchmark.group = "epoch: 49,000 examples, K=32, float32"
    work = workload("float32")
    time_case(peer_case(peer, work), rounds=3, work=work, peer=peer)
