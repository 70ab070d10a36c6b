"""The cluster view's autoscaler part as a frontend sees it: the widget models a real
ipykernel sends over its comms (what JupyterLab draws). Its Adapt controls start on the
cluster's worker type with that type's min and max; its pending demand empties within
2 s of the last task ending (a drain comes with no autoscaler event: load reports
reload it while demand is shown)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from ..kernel.harness import Kernel

pytestmark = pytest.mark.timeout(300)


def models(kernel: Kernel, until: float | None = None) -> dict[str, dict[str, Any]]:
    """Each widget model's state as the frontend has it (``until``: from the messages
    the kernel sent up to that time)."""
    states: dict[str, dict[str, Any]] = {}
    for m in kernel.messages:
        if until is not None and _sent(m) > until:
            continue
        content = m["content"]
        if m["msg_type"] == "comm_open":
            states[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif m["msg_type"] == "comm_msg" and content["data"].get("method") == "update":
            states.setdefault(content["comm_id"], {}).update(content["data"]["state"])
    return states


def _sent(msg: dict) -> float:
    date = msg["header"]["date"]
    if isinstance(date, str):
        date = datetime.datetime.fromisoformat(date)
    return date.timestamp()


def part(states: dict[str, dict[str, Any]], css_class: str) -> dict[str, Any]:
    (found,) = [s for s in states.values() if css_class in s.get("_dom_classes", ())]
    return found


THREE_TASKS = '''
import time
@nbcluster.remote
def work():
    time.sleep(1.0)
    return time.time()
ends = nbcluster.get([work.remote() for _ in range(3)], timeout=120)
print("LAST-END", max(ends))
'''


def test_adapt_controls_and_pending_demand(kernel: Kernel) -> None:
    cell = kernel.execute("import nbcluster\n%load_ext nbcluster\n%cluster start --num-cpus 0 --autoscale 0:1")
    assert kernel.error(cell) is None, kernel.error(cell)
    try:
        kernel.collect(0.5)
        states = models(kernel)
        dropdown = next(s for s in states.values() if s.get("_model_name") == "DropdownModel")
        assert dropdown["_options_labels"] == ["worker"] and dropdown["index"] == 0, dropdown
        bounds = {s["description"]: s["value"] for s in states.values() if s.get("_model_name") == "BoundedIntTextModel"}
        assert bounds == {"min": 0, "max": 1}, bounds

        # Three tasks for a worker the autoscaler has to launch: demand shown, then drained.
        cell = kernel.execute(THREE_TASKS, timeout=180)
        assert kernel.error(cell) is None, kernel.error(cell)
        last_end = float(kernel.text(cell).split("LAST-END")[1])
        shown = [m for m in kernel.messages if m["msg_type"] == "comm_msg"
                 and "Pending demand" in str(m["content"]["data"].get("state", {}).get("value", ""))]
        assert shown, "the demand for the worker was never shown"
        kernel.collect(max(0.0, last_end + 2.3 - datetime.datetime.now().timestamp()))
        autoscaler = part(models(kernel, until=last_end + 2.0), "nbc-cluster-autoscaler")
        assert "Autoscaler" in autoscaler["value"] and "Pending demand" not in autoscaler["value"], autoscaler["value"]
    finally:
        kernel.execute("%cluster stop")


def test_adapt_fields_keep_what_the_user_typed_until_the_bounds_change(start_cluster: Any) -> None:
    from nbcluster.autoscaler import set_worker_bounds
    from nbcluster.widgets import ClusterWidget

    from ..conftest import wait_for
    from .test_widgets import autoscaling_config

    start_cluster(autoscaling_config=autoscaling_config())
    widget = ClusterWidget()
    try:
        assert (widget._type.value, widget._min.value, widget._max.value) == ("w", 0, 1)
        widget._min.value = 1  # typed, not applied yet
        widget._update([])  # a flush of events redraws the view
        assert widget._min.value == 1
        set_worker_bounds(0, 2, node_type="w")  # changed elsewhere: the fields follow
        wait_for(lambda: widget._max.value == 2, timeout=10, message="the new max in the field")
        assert widget._min.value == 0
    finally:
        widget.close()
