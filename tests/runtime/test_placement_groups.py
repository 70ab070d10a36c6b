"""Placement groups with real processes: reserving bundles (PACK, SPREAD, STRICT_PACK,
STRICT_SPREAD) on one node and on several, tasks and actors pinned into bundles,
children captured, removal, groups that wait, lost bundles placed again, the
autoscaler adding nodes for a waiting group — and never half a group held."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

import nbcluster
from nbcluster.cluster_utils import Cluster
from nbcluster.exceptions import ActorDiedError, RayError
from nbcluster.runtime import cli, cli_view
from nbcluster.runtime import bundles as names
from nbcluster.runtime.autoscaler import policy
from nbcluster.runtime.autoscaler.config import load_config
from nbcluster.runtime.gcs.bundle_placement import NodeRoom, place
from nbcluster.runtime.discovery import call_gcs
from nbcluster.runtime.node import resources as rs
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.protocol import node_manager_pb2 as nm_pb2
from nbcluster.runtime.transport import methods
from nbcluster.state import get_autoscaler_state, list_nodes, list_placement_groups
from nbcluster.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from nbcluster.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from ..conftest import FAST_CONFIG, run_python, wait_for
from ..test_client_mode_local import drive, head  # noqa: F401 - head: the fixture drive() runs on

FAST_HEALTH = {
    **FAST_CONFIG,
    "health_check_initial_delay_s": 0.5,
    "health_check_period_s": 0.3,
    "health_check_timeout_s": 0.5,
    "health_check_failure_threshold": 3,
}


def in_group(pg, index: int = -1, capture: bool | None = None) -> PlacementGroupSchedulingStrategy:
    return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index,
                                            placement_group_capture_child_tasks=capture)


@nbcluster.remote(num_cpus=1)
def where() -> tuple[str, str | None]:
    """This task's node, and the placement group it runs in."""
    group = get_current_placement_group()
    return nbcluster.get_runtime_context().get_node_id(), group.id.hex() if group else None


@nbcluster.remote(num_cpus=1)
class Member:
    def where(self) -> tuple[str, str | None]:
        group = get_current_placement_group()
        return nbcluster.get_runtime_context().get_node_id(), group.id.hex() if group else None

    def child_group(self) -> str | None:
        return nbcluster.get(where.remote(), timeout=60)[1]


def nodes_of(pg) -> list[str]:
    """The node of each bundle, in order ("" while not placed)."""
    entry = placement_group_table(pg)
    return [entry["bundles_to_node_id"].get(i, "") for i in range(len(entry["bundles"]))]


def free_cpus() -> float:
    return nbcluster.available_resources().get("CPU", 0)


def group_resources(resources: dict[str, float]) -> list[str]:
    return [k for k in resources if "_group_" in k]


def all_given_back() -> bool:
    """Every resource free again, and no group's resources left anywhere."""
    total, free = nbcluster.cluster_resources(), nbcluster.available_resources()
    return total.get("CPU") == free.get("CPU") and not group_resources(total) and not group_resources(free)


def test_bad_bundles_and_arguments_are_refused_before_anything_starts():
    for bundles, error, match in [
        ([], ValueError, "must not be empty"),
        ([{}], ValueError, "bundle 0 is empty"),
        ([{"CPU": 1}, {"CPU": -1}], ValueError, "bundle 1: the amount of 'CPU' must be >= 0"),
        ([{"CPU": 0}], ValueError, "reserves nothing"),
        ([{"CPU": "1"}], TypeError, "must be a number"),
        ([{"CPU": 1}, ["CPU"]], TypeError, "bundle 1 must be a dict"),
        ({"CPU": 1}, TypeError, "must be a list of dicts"),
        ("CPU", TypeError, "must be a list of dicts"),
    ]:
        with pytest.raises(error, match=match):
            placement_group(bundles)
    with pytest.raises(ValueError, match="strategy must be one of PACK, SPREAD, STRICT_PACK, STRICT_SPREAD"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="lifetime must be None or 'detached'"):
        placement_group([{"CPU": 1}], lifetime="forever")
    with pytest.raises(ValueError, match="placement_group_bundle_index must be an int >= -1"):
        PlacementGroupSchedulingStrategy(None, placement_group_bundle_index=-2)
    with pytest.raises(TypeError, match="must be a PlacementGroup"):
        PlacementGroupSchedulingStrategy("my-group")
    assert not nbcluster.is_initialized()


@pytest.fixture(scope="class")
def one_node():
    """An embedded cluster: one node with 4 CPUs."""
    nbcluster.init(num_cpus=4, _system_config=FAST_CONFIG)
    try:
        yield
    finally:
        nbcluster.shutdown()


@pytest.fixture(scope="class")
def cluster():
    """A head with 1 CPU and three nodes with 2 CPUs each (cluster_utils.Cluster)."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_HEALTH})
    for _ in range(3):
        cluster.add_node(num_cpus=2)
    nbcluster.init(address=cluster.address)
    try:
        yield cluster
    finally:
        nbcluster.shutdown()
        cluster.shutdown()


@pytest.mark.usefixtures("one_node")
class TestOneNode:
    def test_a_group_is_reserved_ready_listed_found_and_removed(self):
        node = nbcluster.get_runtime_context().get_node_id()
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], name="gang")
        assert nbcluster.get(pg.ready(), timeout=30) == pg
        assert pg.wait(5) is True
        assert pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}] and pg.bundle_count == 2
        entry = placement_group_table(pg)
        assert entry["state"] == "CREATED" and entry["strategy"] == "PACK" and entry["name"] == "gang"
        assert entry["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 1.0}}
        assert entry["bundles_to_node_id"] == {0: node, 1: node}
        assert entry["stats"]["scheduling_state"] == "FINISHED"
        assert placement_group_table()[pg.id.hex()] == entry
        assert get_placement_group("gang") == pg
        assert [g.name for g in list_placement_groups(state="CREATED")] == ["gang"]
        wait_for(lambda: free_cpus() == 2, message="2 CPUs taken by the group")
        assert nbcluster.cluster_resources()[f"CPU_group_{pg.id.hex()}"] == 2
        remove_placement_group(pg)
        wait_for(all_given_back, message="the group's resources given back")
        assert placement_group_table(pg)["state"] == "REMOVED"
        assert pg.wait(1) is False
        remove_placement_group(pg)  # again: nothing happens
        with pytest.raises(ValueError, match="no placement group named 'gang'"):
            get_placement_group("gang")

    def test_tasks_and_actors_run_in_their_bundle(self):
        pg = placement_group([{"CPU": 1}, {"CPU": 1}, {"CPU": 1}])
        pg.wait(30)
        mine = pg.id.hex()
        node = nbcluster.get_runtime_context().get_node_id()
        refs = [where.options(scheduling_strategy=in_group(pg, i)).remote() for i in (0, 1, -1)]
        refs.append(where.options(placement_group=pg, placement_group_bundle_index=2).remote())  # Ray's older spelling
        assert nbcluster.get(refs, timeout=60) == [(node, mine)] * 4
        member = Member.options(scheduling_strategy=in_group(pg, 1)).remote()
        assert nbcluster.get(member.where.remote(), timeout=60) == (node, mine)
        # Work in a bundle uses the bundle's CPU, not the node's others.
        assert free_cpus() == 1
        assert nbcluster.get(where.remote(), timeout=60) == (node, None)
        assert get_current_placement_group() is None  # the driver is in no group
        with pytest.raises(ValueError, match="placement_group_bundle_index 3 is out of range: .* 3 bundle"):
            where.options(scheduling_strategy=in_group(pg, 3))
        with pytest.raises(ValueError, match="either as scheduling_strategy"):
            where.options(scheduling_strategy="SPREAD", placement_group=pg)
        nbcluster.kill(member)
        remove_placement_group(pg)
        wait_for(all_given_back, message="the group's resources given back")

    def test_children_are_captured_only_when_asked(self):
        pg = placement_group([{"CPU": 1}, {"CPU": 1}, {"CPU": 1}])
        pg.wait(30)
        mine = pg.id.hex()

        @nbcluster.remote(num_cpus=1)
        def parent(strategy=None):
            child = where.options(scheduling_strategy=strategy) if strategy else where
            inner = nbcluster.get(child.remote(), timeout=60)[1]  # (a child not in the group may run inline here)
            context = nbcluster.get_runtime_context()  # after it: still this task's group
            return inner, context.get_placement_group_id(), context.should_capture_child_tasks_in_placement_group

        captured = parent.options(scheduling_strategy=in_group(pg, 0, capture=True))
        assert nbcluster.get(captured.remote(), timeout=60) == (mine, mine, True)
        assert nbcluster.get(captured.remote("DEFAULT"), timeout=60) == (None, mine, True)  # opted out
        plain = parent.options(scheduling_strategy=in_group(pg, 0))
        assert nbcluster.get(plain.remote(), timeout=60) == (None, mine, False)
        # An actor that captures: its calls' children, and actors it starts, go into the group.
        member = Member.options(scheduling_strategy=in_group(pg, 1, capture=True)).remote()
        assert nbcluster.get(member.child_group.remote(), timeout=60) == mine
        nbcluster.kill(member)
        remove_placement_group(pg)
        wait_for(all_given_back, message="the group's resources given back")

    def test_removing_a_group_kills_what_runs_in_it(self, tmp_path):
        pg = placement_group([{"CPU": 1}, {"CPU": 1}])
        pg.wait(30)
        started = tmp_path / "started"

        @nbcluster.remote(num_cpus=1)
        def forever(flag):
            open(flag, "w").close()
            time.sleep(600)

        once = forever.options(scheduling_strategy=in_group(pg, 0), max_retries=0).remote(str(started))
        member = Member.options(scheduling_strategy=in_group(pg, 1)).remote()
        nbcluster.get(member.where.remote(), timeout=60)
        wait_for(started.exists, timeout=30, message="the task running")
        # Work in one bundle takes the group-wide resources too: nothing is left for "any bundle".
        wait_for(lambda: nbcluster.available_resources().get(f"CPU_group_{pg.id.hex()}", 0) == 0,
                 message="the group's CPUs all taken")
        remove_placement_group(pg)
        with pytest.raises(RayError):
            nbcluster.get(once, timeout=30)
        with pytest.raises(ActorDiedError, match="placement group was removed"):
            nbcluster.get(member.where.remote(), timeout=30)
        # Work sent to a removed group fails rather than waiting for ever.
        with pytest.raises(RayError, match="was removed"):
            nbcluster.get(where.options(scheduling_strategy=in_group(pg, 0)).remote(), timeout=30)
        wait_for(all_given_back, message="the group's resources given back")

    def test_a_group_that_does_not_fit_waits_and_says_why(self, caplog, capsys):
        big = placement_group([{"CPU": 3}])
        big.wait(30)
        waiting = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK", name="second")
        assert waiting.wait(0.5) is False
        ready, _ = nbcluster.wait([waiting.ready()], timeout=0.5)
        assert not ready
        entry = placement_group_table(waiting)
        assert entry["state"] == "PENDING" and entry["bundles_to_node_id"] == {}
        assert "do not fit the free resources" in entry["reason"]
        status = cli_view.status_text("here", list_nodes(), placement_groups=list_placement_groups())
        assert "Placement groups (1 CREATED, 1 PENDING)" in status
        assert "second PENDING STRICT_PACK {CPU: 1} {CPU: 1}: waiting for resources" in status
        capsys.readouterr()
        assert cli.main(["list", "placement-groups", "--state", "PENDING", "--format", "json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(g["name"], g["strategy"], g["bundles_to_node_id"]) for g in listed] == [("second", "STRICT_PACK", ["", ""])]
        remove_placement_group(big)
        assert waiting.wait(30) is True
        assert nbcluster.get(waiting.ready(), timeout=30) == waiting
        with caplog.at_level(logging.WARNING, logger="nbcluster"):
            never = placement_group([{"CPU": 5}])
        assert any(r.getMessage().startswith(f"Placement group ({never.id.hex()[:8]}) is infeasible: the cluster's "
                                             "nodes cannot hold its bundles [{CPU: 5}] together (PACK)")
                   for r in caplog.records)
        assert placement_group_table(never)["reason"].startswith("infeasible")
        for pg in (waiting, never):
            remove_placement_group(pg)
        wait_for(all_given_back, message="the groups' resources given back")


DETACHING_DRIVER = """
import nbcluster
from nbcluster.util import placement_group
nbcluster.init(address={address!r}, namespace="pgs")
keep = placement_group([{{"CPU": 1}}], name="keep", lifetime="detached")
temp = placement_group([{{"CPU": 1}}], name="temp")
print("READY", keep.wait(30), temp.wait(30))
"""


class TestSeveralNodes:
    def test_pack_and_spread_place_bundles_and_work_follows_them(self, cluster):
        workers = {n.node_id for n in cluster.worker_nodes}
        spread = placement_group([{"CPU": 0.5}] * 3, strategy="SPREAD")
        assert spread.wait(30)
        packed = placement_group([{"CPU": 0.5}] * 2, strategy="PACK")
        assert packed.wait(30)
        # 1.5 CPUs are left on two nodes at most: the group spans two.
        wide = placement_group([{"CPU": 1.5}, {"CPU": 1.5}], strategy="PACK")
        assert wide.wait(30), placement_group_table(wide)
        assert len(set(nodes_of(spread))) == 3
        assert len(set(nodes_of(packed))) == 1
        assert len(set(nodes_of(wide))) == 2 and set(nodes_of(wide)) <= workers
        for pg in (spread, packed):
            refs = [where.options(num_cpus=0.5, scheduling_strategy=in_group(pg, i)).remote()
                    for i in range(pg.bundle_count)]
            assert [n for n, _ in nbcluster.get(refs, timeout=60)] == nodes_of(pg)
        members = [Member.options(num_cpus=1.5, scheduling_strategy=in_group(wide, i)).remote() for i in (0, 1)]
        assert [n for n, _ in nbcluster.get([m.where.remote() for m in members], timeout=60)] == nodes_of(wide)
        for m in members:
            nbcluster.kill(m)
        for pg in (spread, packed, wide):
            remove_placement_group(pg)
        wait_for(all_given_back, message="the groups' resources given back")

    def test_strict_spread_puts_each_bundle_on_a_node_of_its_own(self, cluster):
        pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
        assert pg.wait(30)
        assert len(set(nodes_of(pg))) == 3
        refs = [where.options(scheduling_strategy=in_group(pg, i)).remote() for i in range(3)]
        assert [n for n, _ in nbcluster.get(refs, timeout=60)] == nodes_of(pg)
        too_many = placement_group([{"CPU": 1}] * 5, strategy="STRICT_SPREAD")  # 4 nodes
        assert too_many.wait(1) is False
        assert "cannot hold its bundles" in placement_group_table(too_many)["reason"]
        for g in (pg, too_many):
            remove_placement_group(g)
        wait_for(all_given_back, message="the groups' resources given back")

    def test_a_group_that_is_not_detached_ends_with_its_job(self, cluster):
        out = run_python(DETACHING_DRIVER.format(address=cluster.address))
        assert "READY True True" in out.stdout
        groups = {g.name: g for g in list_placement_groups()}
        wait_for(lambda: {g.name: g for g in list_placement_groups()}["temp"].state == "REMOVED",
                 message="the job's group removed")
        assert "its job ended" in {g.name: g for g in list_placement_groups()}["temp"].reason
        keep = groups["keep"]
        assert keep.state == "CREATED" and keep.detached
        from nbcluster.util.placement_group import PlacementGroup, PlacementGroupID

        remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(keep.placement_group_id))))
        wait_for(all_given_back, message="the groups' resources given back")

    def test_competing_groups_are_each_held_whole_or_not_at_all(self, cluster):
        # Three 2-CPU nodes and a 1-CPU head: room for one pair of 2-CPU bundles on two
        # distinct nodes, not two pairs. Four groups ask at once.
        groups: list = []
        threads = [
            threading.Thread(target=lambda: groups.append(
                placement_group([{"CPU": 2}, {"CPU": 2}], strategy="STRICT_SPREAD")))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen_partial = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for entry in (placement_group_table(pg) for pg in groups):
                placed = len(entry["bundles_to_node_id"])
                if placed not in (0, 2) or (placed == 2) != (entry["state"] == "CREATED"):
                    seen_partial.append(entry)
            time.sleep(0.05)
        assert not seen_partial
        created = [pg for pg in groups if placement_group_table(pg)["state"] == "CREATED"]
        assert len(created) == 1
        wait_for(lambda: free_cpus() == 7 - 4, message="exactly one group's CPUs taken")
        for pg in groups:
            remove_placement_group(pg)
        wait_for(all_given_back, message="the groups' resources given back")

    def test_a_node_prepares_all_the_bundles_asked_or_none(self, cluster):
        token = cluster.head_node._handle.token
        nodes = call_gcs((cluster.address, token), methods.Gcs.GetAllNodes, gcs_pb2.GetAllNodesRequest()).nodes
        node = next(n for n in nodes if n.node_id.hex() == cluster.worker_nodes[0].node_id)

        def call(method, request):
            return call_gcs((node.address, token), method, request)

        specs = [nm_pb2.BundleSpec(placement_group_id=os.urandom(16), index=i,
                                   resources=common_pb2.ResourceSet(amounts={"CPU": 1.5})) for i in range(2)]
        refused = call(methods.NodeManager.PrepareBundles, nm_pb2.PrepareBundlesRequest(bundles=specs))
        assert not refused.prepared and refused.reason == "needs {CPU: 3}, {CPU: 2} free"
        assert refused.resources.available.amounts["CPU"] == 2  # nothing held
        one = call(methods.NodeManager.PrepareBundles, nm_pb2.PrepareBundlesRequest(bundles=specs[:1]))
        assert one.prepared and one.resources.available.amounts["CPU"] == 0.5
        released = call(methods.NodeManager.ReleaseBundles, nm_pb2.ReleaseBundlesRequest(
            placement_group_id=specs[0].placement_group_id, indexes=[0]))
        assert released.resources.available.amounts["CPU"] == 2

    def test_strict_pack_waits_for_a_node_big_enough(self, cluster):
        pg = placement_group([{"CPU": 2}, {"CPU": 2}], strategy="STRICT_PACK")
        assert pg.wait(1) is False
        ready = pg.ready()
        big = cluster.add_node(num_cpus=4)
        assert nbcluster.get(ready, timeout=60) == pg
        assert nodes_of(pg) == [big.node_id, big.node_id]
        remove_placement_group(pg)
        wait_for(all_given_back, message="the group's resources given back")

    def test_bundles_lost_with_their_node_are_placed_again(self, cluster):
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        assert pg.wait(30)
        before = nodes_of(pg)
        victim = next(n for n in cluster.worker_nodes if n.node_id in before)
        lost = before.index(victim.node_id)
        cluster.remove_node(victim, allow_graceful=False)
        wait_for(lambda: placement_group_table(pg)["stats"]["num_reschedules"] == 1, timeout=30,
                 message="the group rescheduling")
        assert pg.wait(30)
        after = nodes_of(pg)
        assert after[1 - lost] == before[1 - lost]  # the other bundle stayed
        assert after[lost] not in (victim.node_id, before[1 - lost])
        assert nbcluster.get(where.options(scheduling_strategy=in_group(pg, lost)).remote(), timeout=60)[0] == after[lost]
        remove_placement_group(pg)
        wait_for(all_given_back, message="the group's resources given back")


#: Three worker nodes of 2 CPUs at most, none at first; a head with no CPU.
AUTOSCALING = {
    "cluster_name": "pg",
    "max_workers": 3,
    "upscaling_speed": 3,
    "idle_timeout_minutes": 1,
    "head_node_type": "head",
    "available_node_types": {
        "head": {"resources": {"CPU": 0}},
        "cpu_worker": {"resources": {"CPU": 2}, "min_workers": 0, "max_workers": 3},
    },
}


def test_the_autoscaler_adds_nodes_for_a_waiting_group(start_cluster):
    start_cluster(autoscaling_config=AUTOSCALING)
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert nbcluster.get(pg.ready(), timeout=90) == pg
    assert len(set(nodes_of(pg))) == 2
    adds = [e.message for e in get_autoscaler_state().events if e.message.startswith("Adding")]
    assert adds[0] == "Adding 2 nodes of type cpu_worker for 2 pending placement group bundles {CPU: 1}", adds
    remove_placement_group(pg)


def test_the_policy_packs_a_waiting_group_by_its_strategy():
    config = load_config(AUTOSCALING)

    def launched(*demand: policy.Demand) -> int:
        plan = policy.plan(policy.PolicyInput(config=config, nodes=[], instances=[], demand=demand))
        return sum(launch.count for launch in plan.launches)

    one_cpu = policy.shape_of({"CPU": 1})
    kind = "placement group bundle"
    assert launched(*[policy.Demand(one_cpu, kind)] * 3) == 2  # PACK or SPREAD: two bundles to a node
    assert launched(*[policy.Demand(one_cpu, kind, spread_group="g")] * 3) == 3  # STRICT_SPREAD: one to a node
    assert launched(*[policy.Demand(one_cpu, kind, spread_group="g")] * 2,
                    *[policy.Demand(one_cpu, kind, spread_group="h")] * 2) == 2


def test_where_bundles_go_by_strategy():
    def room(name: str, cpus: float, total: float | None = None) -> NodeRoom:
        return NodeRoom(name.encode(), rs.to_fixed({"CPU": cpus}), rs.to_fixed({"CPU": total or cpus}))

    nodes = [room("a", 4), room("b", 2), room("c", 2)]
    one = rs.to_fixed({"CPU": 1})
    three = {i: one for i in range(3)}
    assert set(place("PACK", three, nodes).values()) == {b"a"}
    assert set(place("SPREAD", three, nodes).values()) == {b"a", b"b", b"c"}
    assert place("STRICT_PACK", {0: rs.to_fixed({"CPU": 3}), 1: one}, nodes) == {0: b"a", 1: b"a"}
    assert place("STRICT_PACK", {i: rs.to_fixed({"CPU": 2}) for i in range(3)}, nodes) is None
    assert sorted(place("STRICT_SPREAD", three, nodes).values()) == [b"a", b"b", b"c"]
    assert place("STRICT_SPREAD", {i: one for i in range(4)}, nodes) is None
    # Rescheduling: next to what the group still holds (STRICT_PACK), away from it (STRICT_SPREAD).
    assert place("STRICT_PACK", {1: one}, nodes, placed={0: b"b"}) == {1: b"b"}
    assert place("STRICT_SPREAD", {1: one}, nodes, placed={0: b"a", 2: b"b"}) == {1: b"c"}
    # Busy now, but it could fit some day: the totals say so.
    busy = [room("a", 0, 4)]
    assert place("PACK", three, busy) is None and place("PACK", three, busy, ever=True) == {0: b"a", 1: b"a", 2: b"a"}


def test_bundles_become_resources_under_the_groups_names():
    group = bytes(range(16))
    hex_id = group.hex()
    assert names.committed_resources(group, 1, {"CPU": 2}) == {
        f"CPU_group_1_{hex_id}": 2, f"CPU_group_{hex_id}": 2,
        f"bundle_group_1_{hex_id}": 1000, f"bundle_group_{hex_id}": 1000,
    }
    assert names.in_group({"CPU": 1}, group, 1) == {
        f"CPU_group_1_{hex_id}": 1, f"CPU_group_{hex_id}": 1,
        f"bundle_group_1_{hex_id}": 0.001, f"bundle_group_{hex_id}": 0.001,
    }
    assert names.in_group({}, group) == {f"bundle_group_{hex_id}": 0.001}  # pinned to the group, needing nothing
    assert names.group_of(f"CPU_group_1_{hex_id}") == names.group_of(f"my_res_group_{hex_id}") == hex_id
    assert names.group_of("CPU") is None and names.group_of("my_group_thing") is None


def test_a_client_with_no_node_uses_placement_groups(head):  # noqa: F811 - the imported fixture
    out = drive(head, """
        from nbcluster.util import get_current_placement_group, placement_group, placement_group_table
        from nbcluster.util import remove_placement_group
        from nbcluster.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        pg = placement_group([{"CPU": 1}])
        nbcluster.get(pg.ready(), timeout=60)
        @nbcluster.remote(num_cpus=1)
        def inside():
            return get_current_placement_group().id.hex()
        strategy = PlacementGroupSchedulingStrategy(pg, 0)
        got = nbcluster.get(inside.options(scheduling_strategy=strategy).remote(), timeout=60)
        state = placement_group_table(pg)["state"]
        remove_placement_group(pg)
        print(json.dumps([got == pg.id.hex(), state, pg.wait(1)]))
    """)
    assert out == [True, "CREATED", False]
