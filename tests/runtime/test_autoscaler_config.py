"""Unit tests of the autoscaler's cluster config (Ray's cluster-YAML shape); no processes."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nbcluster.exceptions import AutoscalerConfigError, NbclusterError
from nbcluster.runtime.autoscaler.config import (
    AutoscalingConfig,
    NodeTypeConfig,
    ProviderConfig,
    load_config,
)

RAY_STYLE = """\
cluster_name: demo
max_workers: 4
upscaling_speed: 2
idle_timeout_minutes: 1
provider:
  type: external
  module: mypkg.provider.Provider
  region: here
auth:
  ssh_user: ubuntu
docker:
  image: rayproject/ray:latest
file_mounts: {}
setup_commands:
  - pip install numpy
head_start_ray_commands: [ray stop]
min_workers: 0
available_node_types:
  head:
    resources: {CPU: 2}
    node_config: {}
  cpu_worker:
    resources: {CPU: 1, memory: 1073741824}
    min_workers: 1
    node_config:
      instance_type: m5.large
    worker_setup_commands: [echo hi]
    labels: {zone: a}
  gpu_worker:
    resources: {CPU: 4, GPU: 1, accel: 2}
    max_workers: 10
head_node_type: head
"""


def write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def minimal(**top: Any) -> dict[str, Any]:
    return {"available_node_types": {"w": {"resources": {"CPU": 1}}}, **top}


def test_ray_style_file_loads_with_values_defaults_and_ignored_keys(tmp_path: Path) -> None:
    path = write(tmp_path, RAY_STYLE)
    c = load_config(path)
    assert (c.cluster_name, c.max_workers, c.upscaling_speed, c.idle_timeout_minutes) == ("demo", 4, 2.0, 1.0)
    assert c.idle_timeout_s == 60.0
    assert c.source == str(path)
    assert c.provider == ProviderConfig("external", {"module": "mypkg.provider.Provider", "region": "here"})
    assert c.head_node_type == "head"
    assert list(c.available_node_types) == ["head", "cpu_worker", "gpu_worker"]
    head, cpu, gpu = c.available_node_types.values()
    assert head == NodeTypeConfig("head", {"CPU": 2.0}, min_workers=0, max_workers=0)
    # A worker type's max_workers defaults to the cluster's; an explicit larger one is kept.
    assert cpu == NodeTypeConfig(
        "cpu_worker", {"CPU": 1.0, "memory": 2.0**30}, 1, 4, {"instance_type": "m5.large"}
    )
    assert gpu.max_workers == 10 and gpu.resources == {"CPU": 4.0, "GPU": 1.0, "accel": 2.0}
    assert all(type(v) is float for t in c.available_node_types.values() for v in t.resources.values())
    assert list(c.worker_types) == ["cpu_worker", "gpu_worker"]
    assert c.head_resources() == {"CPU": 2.0}
    assert c.ignored_keys == (
        "auth", "docker", "file_mounts", "setup_commands", "head_start_ray_commands", "min_workers",
        "available_node_types.cpu_worker.worker_setup_commands", "available_node_types.cpu_worker.labels",
    )


def test_defaults_match_ray_and_provider_defaults_to_local() -> None:
    c = load_config(minimal())
    assert (c.cluster_name, c.max_workers) == ("default", 2)
    assert (c.upscaling_speed, c.idle_timeout_minutes) == (1.0, 5.0)
    assert c.provider == ProviderConfig("local", {})
    assert c.head_node_type is None and c.head_resources() is None
    assert c.available_node_types["w"] == NodeTypeConfig("w", {"CPU": 1.0}, 0, 2, {})
    assert c.source == "<dict>" and c.ignored_keys == ()


def test_fraction_idle_timeout(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        idle_timeout_minutes: 0.05
        available_node_types:
          w: {resources: {}}
        """)
    c = load_config(path)
    assert c.idle_timeout_minutes == 0.05
    assert c.idle_timeout_s == pytest.approx(3.0)


def test_typo_key_reports_line_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        cluster_name: demo
        max_workers: 4
        available_node_types:
          head:
            resources: {CPU: 2}
          cpu_worker:
            max_worker: 3
            resources: {CPU: 1}
        """)
    with pytest.raises(AutoscalerConfigError) as info:
        load_config(path)
    err = info.value
    assert str(err) == (
        f"{path} line 7: available_node_types.cpu_worker.max_worker: unknown key; did you mean "
        "'max_workers'? Valid keys: max_workers, min_workers, node_config, resources"
    )
    assert (err.key, err.line, err.source) == ("available_node_types.cpu_worker.max_worker", 7, str(path))
    assert isinstance(err, ValueError) and isinstance(err, NbclusterError)


def test_typo_of_a_ray_key_is_suggested_as_such() -> None:
    with pytest.raises(AutoscalerConfigError, match=r"setup_comands: unknown key; did you mean "
                                                    r"'setup_commands' \(a Ray key"):
        load_config(minimal(setup_comands=["x"]))


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    with pytest.raises(AutoscalerConfigError, match=r"^<dict>: zzz: unknown key; remove it; valid keys: "
                                                    r"available_node_types, cluster_name, "):
        load_config(minimal(zzz=1))


BAD_TYPES = [
    # (YAML body, dotted key, line of the error, words the message must hold)
    ("max_workers: 'two'\navailable_node_types:\n  w: {resources: {}}\n",
     "max_workers", 1, "must be a whole number >= 0, got 'two' (str)"),
    ("available_node_types:\n  w:\n    resources: {}\n    max_workers: '3'\n",
     "available_node_types.w.max_workers", 4, "must be a whole number >= 0, got '3' (str)"),
    ("available_node_types:\n  w:\n    resources:\n      CPU: 1\n      GPU: -1\n",
     "available_node_types.w.resources.GPU", 5, "must be a number >= 0, got -1 (int)"),
    ("available_node_types:\n  w:\n    resources: {}\n    min_workers: true\n",
     "available_node_types.w.min_workers", 4, "got True (bool)"),
    ("available_node_types:\n  w:\n    resources: {}\n    min_workers: 3\n    max_workers: 1\n",
     "available_node_types.w.min_workers", 4, "min_workers 3 is greater than max_workers 1"),
    ("upscaling_speed: 0\navailable_node_types:\n  w: {resources: {}}\n",
     "upscaling_speed", 1, "must be a number > 0"),
    ("idle_timeout_minutes: -1\navailable_node_types:\n  w: {resources: {}}\n",
     "idle_timeout_minutes", 1, "must be a number >= 0"),
    # A bad value on its own line is reported at the value's line, not the key's.
    ("available_node_types:\n  w:\n    resources:\n      - CPU\n",
     "available_node_types.w.resources", 4, "must be a mapping"),
    ("max_workers:\n  'two'\navailable_node_types:\n  w: {resources: {}}\n",
     "max_workers", 2, "got 'two' (str)"),
    ("available_node_types:\n  w:\n    min_workers: 1\n",
     "available_node_types.w.resources", 2, "required key missing"),
    ("available_node_types:\n  w: {resources: {}, node_config: 5}\n",
     "available_node_types.w.node_config", 2, "must be a mapping"),
    ("cluster_name: 7\navailable_node_types:\n  w: {resources: {}}\n",
     "cluster_name", 1, "must be a string"),
    ("available_node_types: {}\n", "available_node_types", 1, "must name at least one node type"),
    ("cluster_name: x\n", "available_node_types", None, "required key missing"),
    ("provider:\n  region: here\navailable_node_types:\n  w: {resources: {}}\n",
     "provider.type", 1, "required key missing"),
]


@pytest.mark.parametrize("body, key, line, words", BAD_TYPES, ids=[b[1] + "-" + b[3][:20] for b in BAD_TYPES])
def test_bad_values_name_the_key_and_line(
    tmp_path: Path, body: str, key: str, line: int | None, words: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(AutoscalerConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.key, err.line) == (key, line)
    where = str(path) if line is None else f"{path} line {line}"
    assert str(err).startswith(f"{where}: {key}: ")
    assert words in str(err)
    assert "; " in str(err).split(f"{key}: ", 1)[1]  # says how to fix it


def test_min_workers_above_the_default_max_says_where_the_max_comes_from() -> None:
    spec = {"head": {"resources": {}, "min_workers": 1}, "w": {"resources": {}}}
    with pytest.raises(AutoscalerConfigError, match="defaults to 0 for the head node type"):
        load_config({"available_node_types": spec, "head_node_type": "head"})


def test_sum_of_worker_min_workers_must_fit_the_cluster_max(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        max_workers: 3
        head_node_type: head
        available_node_types:
          head: {resources: {}, min_workers: 5, max_workers: 5}
          a: {resources: {}, min_workers: 2}
          b: {resources: {}, min_workers: 2}
        """)
    with pytest.raises(AutoscalerConfigError) as info:
        load_config(path)
    assert (info.value.key, info.value.line) == ("max_workers", 1)
    assert "add up to 4 (a=2, b=2), more than max_workers 3" in str(info.value)
    assert "set max_workers to at least 4" in str(info.value)


def test_unknown_head_node_type_lists_valid_names(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        available_node_types:
          head: {resources: {}}
          cpu_worker: {resources: {}}
        head_node_type: haed
        """)
    with pytest.raises(AutoscalerConfigError) as info:
        load_config(path)
    assert (info.value.key, info.value.line) == ("head_node_type", 4)
    assert str(info.value) == (
        f"{path} line 4: head_node_type: 'haed' is not a node type; "
        "use one of the names under available_node_types: head, cpu_worker"
    )


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(AutoscalerConfigError) as info:
        load_config(path)
    assert info.value.source == str(path) and info.value.line is None
    assert str(info.value).startswith(f"{path}: file not found; ")


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster_name: demo\nmax_workers: 2\n  oops: 3\n")
    with pytest.raises(AutoscalerConfigError) as info:
        load_config(path)
    assert info.value.line == 3 and info.value.key == ""
    assert str(info.value).startswith(f"{path} line 3: invalid YAML (")


@pytest.mark.parametrize("body", ["- a\n- b\n", "", "just a string\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, body: str) -> None:
    with pytest.raises(AutoscalerConfigError, match="the top level must be a mapping"):
        load_config(write(tmp_path, body))


def test_dict_input_errors_have_no_line() -> None:
    with pytest.raises(AutoscalerConfigError) as info:
        load_config({"available_node_types": {"w": {"resources": {"CPU": "many"}}}})
    err = info.value
    assert (err.key, err.line, err.source) == ("available_node_types.w.resources.CPU", None, "<dict>")
    assert str(err).startswith("<dict>: available_node_types.w.resources.CPU: must be a number >= 0")
    assert " line " not in str(err)


def test_loaded_config_does_not_share_the_input_dicts() -> None:
    raw = minimal(provider={"type": "external", "opts": {"a": 1}})
    raw["available_node_types"]["w"]["node_config"] = {"tags": ["x"]}
    c = load_config(raw)
    raw["provider"]["opts"]["a"] = 2
    raw["available_node_types"]["w"]["node_config"]["tags"].append("y")
    assert c.provider.options == {"opts": {"a": 1}}
    assert c.available_node_types["w"].node_config == {"tags": ["x"]}


def test_to_dict_round_trips_through_load_config(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, RAY_STYLE))
    d = c.to_dict()
    assert "source" not in d and "ignored_keys" not in d and "auth" not in d
    assert d["provider"] == {"type": "external", "module": "mypkg.provider.Provider", "region": "here"}
    assert d["available_node_types"]["head"]["max_workers"] == 0
    again = load_config(json.loads(json.dumps(d)))
    assert again == c
    assert again.available_node_types == c.available_node_types and again.provider == c.provider
    assert again.source == "<dict>" and again.ignored_keys == ()


def test_to_json_from_json_round_trip_keeps_source_and_ignored_keys(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, RAY_STYLE))
    back = AutoscalingConfig.from_json(c.to_json())
    assert back == c
    assert back.to_dict() == c.to_dict()
    assert (back.source, back.ignored_keys) == (c.source, c.ignored_keys)
    assert back.ignored_keys and back.source.endswith("cluster.yaml")


def test_from_json_checks_its_input() -> None:
    with pytest.raises(AutoscalerConfigError, match=r"<json>: max_workers: must be a whole number"):
        AutoscalingConfig.from_json(json.dumps(minimal(max_workers=-1)))
    with pytest.raises(AutoscalerConfigError, match=r"<json> line 1: invalid JSON"):
        AutoscalingConfig.from_json("{nope")


def test_error_pickles_with_its_fields() -> None:
    err = AutoscalerConfigError("f.yaml line 2: x: bad; fix", key="x", line=2, source="f.yaml")
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.key, back.line, back.source) == (str(err), "x", 2, "f.yaml")
