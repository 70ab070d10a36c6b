"""Unit tests of where a lease request goes (node/scheduling.py); no processes."""

from __future__ import annotations

from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.node.scheduling import Verdict, decide
from nbcluster.runtime.protocol import common_pb2, gcs_pb2, node_manager_pb2 as nm_pb2

HERE = b"h" * 16
CPU1 = rs.to_fixed({"CPU": 1})


def node(name: bytes, total: float, free: float) -> gcs_pb2.NodeInfo:
    return gcs_pb2.NodeInfo(
        node_id=name * 16,
        address=f"10.0.0.{name[0] % 250}:1",
        total=common_pb2.ResourceSet(amounts={"CPU": total}),
        available=common_pb2.ResourceSet(amounts={"CPU": free}),
    )


def where(request: nm_pb2.LeaseRequest, free_here: float, total_here: float, others: list) -> tuple:
    d = decide(request, CPU1, HERE, rs.to_fixed({"CPU": free_here}), rs.to_fixed({"CPU": total_here}), others)
    return d.verdict, d.node.node_id[:1] if d.node is not None else None


def test_default_prefers_here_then_free_nodes_then_waiting_here():
    req = nm_pb2.LeaseRequest()
    assert where(req, 1, 1, [node(b"a", 4, 4)]) == (Verdict.GRANT, None)
    assert where(req, 0, 1, [node(b"a", 4, 2), node(b"b", 4, 3)]) == (Verdict.SPILL, b"b")
    assert where(req, 0, 1, [node(b"a", 4, 0)]) == (Verdict.WAIT, None)
    assert where(req, 0, 0, [node(b"a", 4, 0)]) == (Verdict.SPILL, b"a")  # could ever fit there
    assert where(req, 0, 0, []) == (Verdict.INFEASIBLE, None)


def test_a_spilled_request_stays_unless_another_node_is_free_now():
    req = nm_pb2.LeaseRequest(no_spill=True)
    assert where(req, 0, 1, [node(b"a", 1, 0)]) == (Verdict.WAIT, None)  # busy elsewhere too: stay
    assert where(req, 0, 1, [node(b"a", 1, 1)]) == (Verdict.SPILL, b"a")  # a node with room joined
    assert where(req, 1, 1, [node(b"a", 1, 1)]) == (Verdict.GRANT, None)


def test_hard_node_affinity_never_moves():
    req = nm_pb2.LeaseRequest(
        strategy=nm_pb2.SCHEDULING_STRATEGY_NODE_AFFINITY, affinity_node_id=HERE, affinity_soft=False, no_spill=True
    )
    assert where(req, 0, 1, [node(b"a", 4, 4)]) == (Verdict.WAIT, None)
