"""Unit tests of the scaling policy (a pure function) and of provider bookkeeping; no cluster."""

from __future__ import annotations

from typing import Any

from nbcluster.runtime.autoscaler.config import load_config
from nbcluster.runtime.autoscaler.instances import Instance, InstanceState
from nbcluster.runtime.autoscaler.reconcile import on_its_way
from nbcluster.runtime.autoscaler.policy import (
    Demand,
    InstanceView,
    NodeView,
    PolicyInput,
    plan,
    shape_of,
)

HEAD = NodeView(b"h" * 16, "head", {"CPU": 0}, {"CPU": 0}, is_head=True)


def config(**overrides: Any) -> Any:
    data: dict[str, Any] = {
        "max_workers": 2,
        "upscaling_speed": 2,
        "idle_timeout_minutes": 0.05,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}},
            "cpu_worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 2},
        },
    }
    data.update(overrides)
    return load_config(data)


def tasks(n: int, **shape: float) -> list[Demand]:
    return [Demand(shape_of(shape or {"CPU": 1}), "task")] * n


def worker(name: bytes, idle_s: float | None, instance: str = "i1", cpu: float = 1, free: float | None = None) -> NodeView:
    return NodeView(
        name * 16,
        "cpu_worker",
        {"CPU": cpu},
        {"CPU": cpu if free is None else free},
        idle_s=idle_s,
        instance_id=instance,
    )


def test_four_tasks_launch_two_nodes_and_say_the_cap():
    result = plan(PolicyInput(config(), [HEAD], [], tasks(4)))
    assert [(x.node_type, x.count) for x in result.launches] == [("cpu_worker", 2)]
    assert result.launches[0].message == "Adding 2 nodes of type cpu_worker for 4 pending tasks {CPU: 1}"
    assert [(u.status, u.count, u.reason) for u in result.unmet] == [
        ("capped", 2, "Not adding nodes: cpu_worker is at max_workers=2"),
        ("waiting-for-launch", 2, "waiting for nodes being launched"),
    ]


def test_upscaling_speed_bounds_nodes_on_their_way():
    result = plan(PolicyInput(config(upscaling_speed=1), [HEAD], [], tasks(4)))
    assert [(x.node_type, x.count) for x in result.launches] == [("cpu_worker", 1)]
    assert {u.status for u in result.unmet} == {"waiting-for-launch"}
    assert any("upscaling_speed" in u.reason for u in result.unmet)
    # One node on its way and one alive node: no more until it registers.
    pending = [InstanceView("a", "cpu_worker", pending=True)]
    assert plan(PolicyInput(config(upscaling_speed=1), [HEAD], pending, tasks(4))).launches == ()


def test_demand_that_fits_nodes_on_their_way_launches_nothing_more():
    pending = [InstanceView("a", "cpu_worker", pending=True), InstanceView("b", "cpu_worker", pending=True)]
    result = plan(PolicyInput(config(max_workers=5, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "cpu_worker": {"resources": {"CPU": 1}, "max_workers": 5},
    }), [HEAD], pending, tasks(2)))
    assert result.launches == ()
    assert [(u.status, u.count, u.reason) for u in result.unmet] == [
        ("waiting-for-launch", 2, "waiting for nodes being launched")
    ]


def test_free_resources_of_alive_nodes_are_used_first():
    node = worker(b"a", idle_s=None, free=1)
    result = plan(PolicyInput(config(), [HEAD, node], [InstanceView("i1", "cpu_worker", False)], tasks(1)))
    assert result.launches == ()
    assert [u.status for u in result.unmet] == ["waiting"]


def test_infeasible_demand_launches_nothing_and_says_why():
    result = plan(PolicyInput(config(), [HEAD], [], tasks(1, GPU=1)))
    assert result.launches == ()
    assert [(u.status, u.reason) for u in result.unmet] == [
        ("infeasible", "Cannot schedule {GPU: 1}: no node type provides GPU")
    ]
    big = plan(PolicyInput(config(), [HEAD], [], tasks(1, CPU=8)))
    assert big.launches == ()
    assert big.unmet[0].status == "infeasible"
    assert "larger than every node type" in big.unmet[0].reason and "cpu_worker" in big.unmet[0].reason


def test_min_workers_are_kept_without_demand():
    cfg = config(available_node_types={
        "head": {"resources": {"CPU": 0}},
        "cpu_worker": {"resources": {"CPU": 1}, "min_workers": 1, "max_workers": 2},
    })
    result = plan(PolicyInput(cfg, [HEAD], []))
    assert [(x.node_type, x.count) for x in result.launches] == [("cpu_worker", 1)]
    assert "min_workers=1" in result.launches[0].message
    # Once it runs, an idle one is not removed below the floor.
    node = worker(b"a", idle_s=999)
    again = plan(PolicyInput(cfg, [HEAD, node], [InstanceView("i1", "cpu_worker", False)]))
    assert again.launches == () and again.removals == ()


def test_request_resources_counts_against_total_capacity():
    cfg = config(max_workers=5, upscaling_speed=3, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "cpu_worker": {"resources": {"CPU": 1}, "max_workers": 5},
    })
    requested = [shape_of({"CPU": 1})] * 3
    result = plan(PolicyInput(cfg, [HEAD], [], requested=requested))
    assert [(x.node_type, x.count) for x in result.launches] == [("cpu_worker", 3)]
    assert "requested resources {CPU: 1} x3" in result.launches[0].message
    busy = worker(b"a", idle_s=None, free=0)  # busy, but its total counts
    result = plan(PolicyInput(cfg, [HEAD, busy], [InstanceView("i1", "cpu_worker", False)], requested=requested))
    assert [(x.node_type, x.count) for x in result.launches] == [("cpu_worker", 2)]


def test_idle_nodes_are_removed_after_the_timeout_only():
    cfg = config()
    idle = worker(b"a", idle_s=4.0, instance="i1")
    fresh = worker(b"b", idle_s=1.0, instance="i2")
    busy = worker(b"c", idle_s=None, instance="i3")
    instances = [InstanceView(i, "cpu_worker", False) for i in ("i1", "i2", "i3")]
    result = plan(PolicyInput(cfg, [HEAD, idle, fresh, busy], instances))
    assert [r.node_id for r in result.removals] == [b"a" * 16]
    assert result.removals[0].message == f"Removing node {(b'a' * 16).hex()[:8]}… (cpu_worker): idle for 4 s"
    # Not the head, not a node the autoscaler did not launch.
    stranger = worker(b"d", idle_s=999, instance="")
    idle_head = NodeView(b"h" * 16, "head", {"CPU": 0}, {"CPU": 0}, idle_s=999, is_head=True)
    assert plan(PolicyInput(cfg, [idle_head, stranger], [])).removals == ()


def test_idle_nodes_stay_for_requests_and_for_waiting_demand_they_fit():
    cfg = config()
    idle = worker(b"a", idle_s=99.0)
    instances = [InstanceView("i1", "cpu_worker", False)]
    assert plan(PolicyInput(cfg, [HEAD, idle], instances, requested=[shape_of({"CPU": 1})])).removals == ()
    assert plan(PolicyInput(cfg, [HEAD, idle], instances, demand=tasks(1))).removals == ()
    assert plan(PolicyInput(cfg, [HEAD, idle], instances, demand=tasks(1, GPU=1))).removals != ()


def test_a_type_backing_off_is_not_launched_and_says_why():
    result = plan(PolicyInput(config(), [HEAD], [], tasks(1), backing_off={"cpu_worker": "a launch failed; retrying in 5 s"}))
    assert result.launches == ()
    assert [(u.status, u.reason) for u in result.unmet] == [("waiting-for-launch", "a launch failed; retrying in 5 s")]


def test_cluster_max_workers_caps_every_type_together():
    cfg = config(max_workers=1, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "small": {"resources": {"CPU": 1}, "max_workers": 3},
        "gpu": {"resources": {"CPU": 1, "GPU": 1}, "max_workers": 3},
    })
    result = plan(PolicyInput(cfg, [HEAD], [], tasks(2) + tasks(1, GPU=1, CPU=1)))
    assert sum(x.count for x in result.launches) == 1
    assert any(u.reason == "Not adding nodes: the cluster is at max_workers=1" for u in result.unmet)


def test_the_smallest_type_that_fits_is_chosen():
    cfg = config(max_workers=4, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "small": {"resources": {"CPU": 1}, "max_workers": 4},
        "big": {"resources": {"CPU": 8}, "max_workers": 4},
    })
    assert [(x.node_type, x.count) for x in plan(PolicyInput(cfg, [HEAD], [], tasks(1))).launches] == [("small", 1)]
    assert [(x.node_type, x.count) for x in plan(PolicyInput(cfg, [HEAD], [], tasks(1, CPU=4))).launches] == [("big", 1)]
    # First-fit decreasing: the 1-CPU task rides on the big node opened for the 4-CPU one.
    both = plan(PolicyInput(cfg, [HEAD], [], tasks(1) + tasks(1, CPU=4)))
    assert [(x.node_type, x.count) for x in both.launches] == [("big", 1)]


def test_several_small_shapes_share_one_new_node():
    cfg = config(max_workers=4, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "quad": {"resources": {"CPU": 4}, "max_workers": 4},
    })
    result = plan(PolicyInput(cfg, [HEAD], [], tasks(6)))
    assert [(x.node_type, x.count) for x in result.launches] == [("quad", 2)]


def test_actor_demand_is_named_as_such():
    result = plan(PolicyInput(config(), [HEAD], [], [Demand(shape_of({"CPU": 1}), "actor")]))
    assert result.launches[0].message == "Adding 1 node of type cpu_worker for 1 pending actor {CPU: 1}"


def test_requested_capacity_also_serves_queued_work():
    cfg = config(max_workers=5, upscaling_speed=1, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "cpu_worker": {"resources": {"CPU": 1}, "max_workers": 5},
    })
    requested = [shape_of({"CPU": 1})] * 2
    # Requests are not held back by upscaling_speed (as Ray), and queued tasks of the
    # same size ride on the nodes launched for them: 2 nodes, not 4.
    result = plan(PolicyInput(cfg, [HEAD], [], tasks(2), requested=requested))
    assert [(x.node_type, x.count) for x in result.launches] == [("cpu_worker", 2)]
    # Once those 2 are on their way, nothing more.
    pending = [InstanceView("a", "cpu_worker", True), InstanceView("b", "cpu_worker", True)]
    assert plan(PolicyInput(cfg, [HEAD], pending, tasks(2), requested=requested)).launches == ()


def test_memory_a_node_type_does_not_declare_does_not_rule_it_out():
    result = plan(PolicyInput(config(), [HEAD], [], tasks(1, CPU=1, memory=2**30)))
    assert [(x.node_type, x.count) for x in result.launches] == [("cpu_worker", 1)]


def test_too_large_names_the_type_closest_on_the_short_resource():
    cfg = config(max_workers=4, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "cpu_big": {"resources": {"CPU": 16}, "max_workers": 2},
        "gpu": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 2},
    })
    result = plan(PolicyInput(cfg, [HEAD], [], tasks(1, GPU=2)))
    assert result.unmet[0].reason == (
        "Cannot schedule {GPU: 2}: it is larger than every node type (the largest, gpu, offers {CPU: 4, GPU: 1})"
    )


def test_a_bad_node_config_is_a_launch_error_and_leaks_nothing(tmp_path):
    import psutil

    from nbcluster.runtime.autoscaler.config import ProviderConfig
    from nbcluster.runtime.autoscaler.local_provider import LocalNodeProvider
    from nbcluster.runtime.autoscaler.providers import ClusterContext, LaunchRequest

    cluster = ClusterContext("127.0.0.1:1", "unix-abstract:none", "t" * 32, tmp_path, "{}")
    provider = LocalNodeProvider(ProviderConfig(), cluster)
    fds = psutil.Process().num_fds()
    for i, node_config in enumerate([{"object_store_memory": "1e9"}, {"bogus": 1}] * 3):
        provider.launch(LaunchRequest(f"r{i}", "cpu_worker", {"CPU": 1}, node_config))
        provider.launch(LaunchRequest(f"r{i}", "cpu_worker", {"CPU": 1}, node_config))  # idempotent
    errors = provider.poll_errors()
    assert [e.request_id for e in errors] == [f"r{i}" for i in range(6)]
    assert "object_store_memory of cpu_worker must be a whole number of bytes > 0, got '1e9'" in errors[0].message
    assert "bogus" in errors[1].message
    assert provider.poll_errors() == [] and provider.non_terminated() == []
    assert psutil.Process().num_fds() == fds


def test_a_node_that_just_joined_counts_as_on_its_way_so_a_request_reported_twice_launches_nothing():
    # Three tasks, three nodes launched; the first has joined and runs one. A request
    # spilled to it is queued there and still in the head's older report: three demands
    # reported for the two tasks left. Counted as on its way a while longer, the node that
    # joined holds the double-counted one; counted only by its free resources, a fourth
    # node would be launched for nothing.
    joined = Instance("cpu_worker")
    joined.to(InstanceState.LAUNCHING)
    joined.to(InstanceState.RUNNING)
    cfg = config(max_workers=4, available_node_types={
        "head": {"resources": {"CPU": 0}},
        "cpu_worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 4}})
    nodes = [HEAD, worker(b"a", None, instance=joined.instance_id, free=0)]
    on_the_way = [InstanceView("i2", "cpu_worker", pending=True), InstanceView("i3", "cpu_worker", pending=True)]
    now = joined.since()

    def launched(settle_s: float) -> int:
        view = InstanceView(joined.instance_id, "cpu_worker", pending=on_its_way(joined, now + 1.0, settle_s))
        result = plan(PolicyInput(cfg, nodes, [view, *on_the_way], tasks(3)))
        return sum(x.count for x in result.launches)

    assert launched(settle_s=2.5) == 0
    assert launched(settle_s=0.5) == 1  # settled: only its free resources count
