"""The core workload in PyTorch, JAX and scikit-learn, in the same group as fastmlp's epoch
(one epoch, 49,000 examples, K=32, float32), so that the table reads as ratios.

Skipped with a reason when the library is not installed: ``pip install 'fastmlp[bench]'``.
"""

import importlib.util

import pytest

from fastmlp import bench, peers


@pytest.mark.parametrize("peer", list(peers.PEERS))
def test_peer_epoch(benchmark, time_case, load, threads, peer):
    if importlib.util.find_spec(peers.PEERS[peer]) is None:
        pytest.skip(f"{peers.PEERS[peer]} is not installed (pip install 'fastmlp[bench]')")
    benchmark.group = "epoch: 49,000 examples, K=32, float32"
    work = bench.Workload(load("float32"), threads=threads)
    case = peers.epoch_case(peer, work)
    time_case(case, rounds=3, flops=bench.epoch_flops(work.n_examples, work.batch_size),
              data=work.data.source, peer=peer)
