"""GPUs: found with nvidia-smi (here a stand-in script on PATH that lists two A100s —
the detector's input is faked, the scheduling is real), handed to tasks and actors by
id as CUDA_VISIBLE_DEVICES, fractions sharing an id, ``accelerator_type=`` placing work
by GPU model, ``num_gpus=`` overriding what was found, none without nvidia-smi."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbcluster

from ..conftest import FAST_CONFIG, run_python

FAKE_SMI = """#!/bin/sh
# A stand-in for nvidia-smi: two A100s, in the format nbcluster asks for.
echo "0, NVIDIA A100-SXM4-40GB"
echo "1, NVIDIA A100-SXM4-40GB"
"""


@pytest.fixture(scope="module")
def fake_smi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("fake-nvidia")
    script = folder / "nvidia-smi"
    script.write_text(FAKE_SMI)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{folder}{os.pathsep}{old}"
    try:
        yield str(folder)
    finally:
        os.environ["PATH"] = old


@pytest.fixture(scope="module")
def two_gpus(fake_smi: str) -> Iterator[None]:
    nbcluster.init(num_cpus=4, _system_config=FAST_CONFIG)
    try:
        yield
    finally:
        nbcluster.shutdown()


def _meet(folder: str, name: str, count: int) -> None:
    """Inside a task: wait (at most 30 s) until ``count`` tasks have arrived."""
    Path(folder, f"{name}-{os.getpid()}-{time.monotonic_ns()}").touch()
    deadline = time.monotonic() + 30
    while len([p for p in os.listdir(folder) if p.startswith(name)]) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the other tasks never ran at the same time")
        time.sleep(0.01)


@nbcluster.remote
def visible(folder: str, name: str, count: int) -> tuple[list[int], str | None]:
    _meet(folder, name, count)
    return nbcluster.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_found_gpus_and_their_model_are_resources(two_gpus: None) -> None:
    total = nbcluster.cluster_resources()
    assert total["GPU"] == 2 and total["accelerator_type:A100"] == 1


def test_tasks_running_together_get_distinct_gpus(two_gpus: None, tmp_path: Path) -> None:
    refs = [visible.options(num_gpus=1).remote(str(tmp_path), "whole", 2) for _ in range(2)]
    (ids_a, env_a), (ids_b, env_b) = nbcluster.get(refs, timeout=60)
    assert sorted(ids_a + ids_b) == [0, 1]
    assert env_a == str(ids_a[0]) and env_b == str(ids_b[0])


def test_half_gpus_share_one_id_and_no_gpu_means_none_visible(two_gpus: None, tmp_path: Path) -> None:
    refs = [visible.options(num_gpus=0.5).remote(str(tmp_path), "half", 2) for _ in range(2)]
    (ids_a, _), (ids_b, _) = nbcluster.get(refs, timeout=60)
    assert len(ids_a) == 1 and ids_a == ids_b  # packed onto one GPU, the other kept whole
    both = visible.options(num_gpus=2).remote(str(tmp_path), "two", 1)
    assert sorted(nbcluster.get(both, timeout=60)[0]) == [0, 1]
    ids, env = nbcluster.get(visible.options(num_gpus=0).remote(str(tmp_path), "none", 1), timeout=60)
    assert ids == [] and env is None


def test_an_actor_keeps_its_gpu_for_life(two_gpus: None) -> None:
    @nbcluster.remote(num_gpus=1)
    class Trainer:
        def gpus(self) -> tuple[list[int], str | None]:
            return nbcluster.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    trainer = Trainer.remote()
    first = nbcluster.get(trainer.gpus.remote(), timeout=60)
    assert len(first[0]) == 1 and first[1] == str(first[0][0])
    assert nbcluster.get(trainer.gpus.remote(), timeout=60) == first
    nbcluster.kill(trainer)


def test_accelerator_type_places_work_by_gpu_model(two_gpus: None, tmp_path: Path) -> None:
    ref = visible.options(num_gpus=1, accelerator_type="A100").remote(str(tmp_path), "a100", 1)
    assert len(nbcluster.get(ref, timeout=60)[0]) == 1
    missing = visible.options(accelerator_type="H100").remote(str(tmp_path), "h100", 1)
    ready, _ = nbcluster.wait([missing], timeout=1.5)
    assert ready == []  # no node has an H100: it waits (and the driver is told why)
    nbcluster.cancel(missing)
    with pytest.raises(TypeError, match="accelerator_type must be a str"):
        visible.options(accelerator_type=100)


def test_num_gpus_overrides_what_was_found_and_without_nvidia_smi_there_are_none(fake_smi: str) -> None:
    code = """
import json, nbcluster
nbcluster.init(num_cpus=1, num_gpus={gpus})
print(json.dumps(nbcluster.cluster_resources()))
nbcluster.shutdown()
"""
    given = json.loads(run_python(code.format(gpus=1)).stdout.strip().splitlines()[-1])
    assert given["GPU"] == 1  # what the user said, though nvidia-smi lists two
    without = [p for p in os.environ["PATH"].split(os.pathsep) if p != fake_smi]
    found = json.loads(run_python(code.format(gpus=None), env={"PATH": os.pathsep.join(without)}).stdout.strip()
                       .splitlines()[-1])
    assert "GPU" not in found and not any(k.startswith("accelerator_type:") for k in found)
