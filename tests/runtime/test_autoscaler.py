"""The autoscaler with real processes: an embedded head with 0 CPUs and the local
provider adding and removing 1-CPU node managers."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import psutil
import pytest

import nbcluster
from nbcluster.autoscaler import request_resources
from nbcluster.exceptions import AutoscalerConfigError, NbclusterError
from nbcluster.state import get_autoscaler_state, list_nodes

from ..conftest import ROOT, run_python, wait_for

IDLE_S = 2.0


def config(**overrides: Any) -> dict[str, Any]:
    worker = {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 2}
    worker.update(overrides.pop("worker", {}))
    data: dict[str, Any] = {
        "cluster_name": "test",
        "max_workers": 2,
        "upscaling_speed": 2,
        "idle_timeout_minutes": IDLE_S / 60,
        "head_node_type": "head",
        "available_node_types": {"head": {"resources": {"CPU": 0}}, "cpu_worker": worker},
    }
    data.update(overrides)
    return data


def workers_alive() -> list[Any]:
    return [n for n in list_nodes() if n.state == "ALIVE" and not n.is_head]


def messages() -> list[str]:
    return [e.message for e in get_autoscaler_state().events]


def launched(msgs: list[str]) -> int:
    return sum(int(m.split()[1]) for m in msgs if m.startswith("Adding "))


@nbcluster.remote
def where(seconds: float) -> str:
    time.sleep(seconds)
    return nbcluster.get_runtime_context().get_node_id()


def test_tasks_scale_up_to_max_workers_then_idle_nodes_go(start_cluster):
    start_cluster(autoscaling_config=config())
    head = nbcluster.get_runtime_context().get_node_id()
    nodes = nbcluster.get([where.remote(2.0) for _ in range(4)], timeout=90)
    assert head not in nodes
    assert len(set(nodes)) == 2, nodes  # both added nodes ran tasks
    state = get_autoscaler_state()
    # (how many still run now depends on timing: an idle node may already be going)
    assert [(t.name, t.max_workers) for t in state.node_types if t.name == "cpu_worker"] == [("cpu_worker", 2)]
    wait_for(lambda: not workers_alive(), timeout=30, message="idle nodes removed")
    msgs = messages()
    assert re.fullmatch(r"Adding 2 nodes of type cpu_worker for \d pending tasks \{CPU: 1\}", msgs[0]), msgs
    assert launched(msgs) == 2
    removals = [m for m in msgs if m.startswith("Removing node ")]
    assert len(removals) == 2, msgs
    assert all(re.fullmatch(r"Removing node [0-9a-f]{8}… \(cpu_worker\): idle for \d+ s", m) for m in removals)
    assert msgs.index(removals[0]) > 0
    dead = [n for n in list_nodes() if not n.is_head]
    assert {n.death_reason.split(":")[0] for n in dead} == {"removed by the autoscaler"}
    assert not any(m.startswith("Cannot schedule") for m in msgs)


def test_an_actor_scales_up_and_its_node_goes_after_the_actor(start_cluster):
    start_cluster(autoscaling_config=config())

    @nbcluster.remote(num_cpus=1)
    class Pinned:
        def node(self) -> str:
            return nbcluster.get_runtime_context().get_node_id()

    actor = Pinned.remote()
    node = nbcluster.get(actor.node.remote(), timeout=60)
    assert node != nbcluster.get_runtime_context().get_node_id()
    assert "Adding 1 node of type cpu_worker for 1 pending actor {CPU: 1}" in messages()
    nbcluster.kill(actor)
    wait_for(lambda: not workers_alive(), timeout=30, message="the actor's node removed once idle")


def test_request_resources_scales_up_without_tasks_and_withdrawing_scales_down(start_cluster):
    start_cluster(autoscaling_config=config())
    request_resources(num_cpus=2)
    wait_for(lambda: len(workers_alive()) == 2, timeout=30, message="two nodes for the request")
    assert "Adding 2 nodes of type cpu_worker for requested resources {CPU: 1} x2" in messages()
    request_resources(num_cpus=0)
    wait_for(lambda: not workers_alive(), timeout=30, message="nodes removed after the request was withdrawn")


def test_request_resources_checks_its_input_and_needs_an_autoscaler(start_cluster):
    start_cluster(num_cpus=1)
    with pytest.raises(ValueError, match="num_cpus"):
        request_resources(num_cpus=-1)
    with pytest.raises(ValueError, match=r"bundles\[0\]"):
        request_resources(bundles=[{"CPU": "x"}])
    with pytest.raises(NbclusterError, match="no autoscaler"):
        request_resources(num_cpus=1)
    assert get_autoscaler_state().enabled is False


def test_infeasible_demand_launches_nothing_and_says_why(start_cluster):
    start_cluster(autoscaling_config=config())

    @nbcluster.remote(num_gpus=1, num_cpus=0)
    def gpu() -> int:
        return 1

    ref = gpu.remote()
    reason = "Cannot schedule {GPU: 1}: no node type provides GPU"
    wait_for(lambda: reason in messages(), timeout=20, message="the infeasible event")
    demand = get_autoscaler_state().demand
    assert [(d.status, d.reason) for d in demand] == [("infeasible", reason)]
    assert get_autoscaler_state().instances == []
    nbcluster.cancel(ref)


def test_min_workers_are_kept_while_idle(start_cluster):
    start_cluster(autoscaling_config=config(worker={"min_workers": 1}))
    wait_for(lambda: len(workers_alive()) == 1, timeout=30, message="the min_workers node")
    assert "Adding 1 node of type cpu_worker for min_workers=1" in messages()
    up = time.monotonic()
    # Several idle timeouts pass; the node stays (a negative, so it needs a window).
    wait_for(lambda: time.monotonic() - up > 3 * IDLE_S, timeout=10)
    assert len(workers_alive()) == 1
    assert not any(m.startswith("Removing") for m in messages())


def test_a_node_killed_by_hand_is_replaced_while_demand_remains(start_cluster):
    start_cluster(autoscaling_config=config(max_workers=1, worker={"max_workers": 1}))
    refs = [where.options(max_retries=3).remote(1.0) for _ in range(6)]
    first = wait_for(workers_alive, timeout=30, message="a node for the tasks")[0]
    instance = first.instance_id
    proc = next(
        p for p in psutil.process_iter(["cmdline"]) if instance in " ".join(p.info["cmdline"] or [])
    )
    wait_for(lambda: any(n.tasks_running for n in workers_alive()), timeout=30, message="a task running there")
    os.kill(proc.pid, signal.SIGKILL)
    nodes = nbcluster.get(refs, timeout=120)
    assert set(nodes) - {first.node_id}, nodes  # the replacement finished the work
    msgs = messages()
    assert any(re.fullmatch(rf"Node {first.node_id[:8]}… \(cpu_worker\) was lost: .*", m) for m in msgs), msgs
    assert launched(msgs) == 2


def test_a_failing_launch_backs_off_and_is_reported(start_cluster):
    start_cluster(autoscaling_config=config(worker={"node_config": {"bogus": 1}}))
    ref = where.remote(0)
    first = "Failed to launch a cpu_worker node: node_config of cpu_worker has keys the local provider does not know: bogus"
    wait_for(lambda: sum(m.startswith(first) for m in messages()) >= 2, timeout=30, message="two failed launches")
    failed = [e for e in get_autoscaler_state().events if e.message.startswith(first)]
    assert failed[0].message.endswith("retrying in 5 s") and failed[1].message.endswith("retrying in 10 s")
    assert failed[1].time - failed[0].time >= 4.5  # backed off
    demand = get_autoscaler_state().demand
    assert demand and "a launch of cpu_worker failed" in demand[0].reason
    nbcluster.cancel(ref)


def test_a_node_that_never_registers_is_terminated(start_cluster, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    cfg = config(provider={"type": "external", "module": "tests.autoscaler_providers.SilentProvider"})
    start_cluster(autoscaling_config=cfg, _system_config={"autoscaler_node_start_timeout_s": 2.0})
    ref = where.remote(0)
    expected = re.compile(
        r"Terminating a cpu_worker node \(instance [0-9a-f]+\): it did not register within 2 s; retrying in 5 s"
    )
    wait_for(lambda: any(expected.fullmatch(m) for m in messages()), timeout=30, message="the start timeout")
    instances = get_autoscaler_state().instances
    wait_for(
        lambda: any(i["state"] == "terminated" for i in get_autoscaler_state().instances),
        timeout=20,
        message="the silent instance terminated",
    )
    assert instances
    nbcluster.cancel(ref)


def test_bad_configs_are_refused_before_anything_starts():
    with pytest.raises(AutoscalerConfigError, match=r"available_node_types\.cpu_worker\.max_worker"):
        nbcluster.init(autoscaling_config=config(worker={"max_worker": 1}))
    with pytest.raises(ValueError, match="cannot be given with address"):
        nbcluster.init(address="auto", autoscaling_config=config())
    # Provider keys the provider does not read are named, never passed over in silence.
    with pytest.raises(AutoscalerConfigError, match=r"provider\.head_ip: .*needs an SSH node provider"):
        nbcluster.init(autoscaling_config=config(provider={"type": "local", "head_ip": "192.0.2.1",
                                                           "worker_ips": ["192.0.2.2"]}))
    with pytest.raises(AutoscalerConfigError, match=r"provider\.regoin: unknown key for node provider 'local'"):
        nbcluster.init(autoscaling_config=config(provider={"type": "local", "regoin": "x"}))
    assert not nbcluster.is_initialized()


def test_the_driver_prints_autoscaler_decisions_and_can_be_told_not_to():
    code = f"""
        import nbcluster, time
        nbcluster.init(autoscaling_config={config()!r}, autoscaler_events=QUIET)
        @nbcluster.remote
        def f():
            return 1
        print(nbcluster.get(f.remote(), timeout=60))
        nbcluster.shutdown()
    """
    loud = run_python(code.replace("QUIET", "True"), timeout=90)
    assert re.search(r"^\(autoscaler \+\d+s\) Adding 1 node of type cpu_worker for 1 pending task \{CPU: 1\}$",
                     loud.stderr, re.M), loud.stderr
    quiet = run_python(code.replace("QUIET", "False"), timeout=90)
    assert "(autoscaler" not in quiet.stderr and quiet.stdout.strip() == "1"


def test_a_node_holding_a_referenced_object_stays_until_it_is_released(start_cluster):
    start_cluster(autoscaling_config=config())

    @nbcluster.remote(max_retries=0)
    def big() -> bytes:
        return b"x" * (2 << 20)  # stored in the node's object store, not inline

    ref = big.remote()
    nbcluster.wait([ref], timeout=60)
    assert len(workers_alive()) == 1
    done = time.monotonic()
    wait_for(lambda: time.monotonic() - done > 3 * IDLE_S, timeout=10)  # a window: a negative
    assert len(workers_alive()) == 1, "a node holding the only copy of a referenced object was removed"
    assert len(nbcluster.get(ref)) == 2 << 20
    del ref
    wait_for(lambda: not workers_alive(), timeout=30, message="the node removed once the object was released")
