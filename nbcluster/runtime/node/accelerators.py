"""A node's GPUs: found with ``nvidia-smi`` (none when it is absent or fails — never an
error), named for the ``accelerator_type:<name>`` resource, and handed out by id to the
leases that ask for GPUs; fractions of one GPU share its id, as in Ray."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

from nbcluster.runtime.node import resources as rs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gpu:
    """One GPU as ``nvidia-smi`` lists it."""

    index: int
    name: str


def detect() -> list[Gpu]:
    """This machine's NVIDIA GPUs (those in ``CUDA_VISIBLE_DEVICES`` when it is set);
    [] when ``nvidia-smi`` is not installed or fails (said once in the node's log)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("nvidia-smi did not answer (%s): counting no GPUs", exc)
        return []
    if out.returncode != 0:
        logger.warning("nvidia-smi failed (%s): counting no GPUs", (out.stderr or out.stdout).strip()[:200])
        return []
    gpus = []
    for line in out.stdout.splitlines():
        index, _, name = line.partition(",")
        if index.strip().isdigit():
            gpus.append(Gpu(int(index), name.strip()))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        keep = {int(x) for x in visible.split(",") if x.strip().isdigit()}
        gpus = [g for g in gpus if g.index in keep]
    return gpus


def accelerator_type(name: str) -> str:
    """The model in a GPU's name, as Ray's ``accelerator_type:`` resources name it
    ("NVIDIA A100-SXM4-40GB" -> "A100", "Tesla T4" -> "T4")."""
    words = [w for w in name.replace("-", " ").split() if w not in ("NVIDIA", "Tesla", "GeForce", "Quadro")]
    return words[0] if words else "unknown"


def detected_resources() -> tuple[float, tuple[int, ...], dict[str, float]]:
    """(GPUs, their ids, extra resources: ``accelerator_type:<model>``) of this machine."""
    gpus = detect()
    if not gpus:
        return 0, (), {}
    logger.info("found %d GPU(s): %s", len(gpus), ", ".join(f"{g.index} {g.name}" for g in gpus))
    return len(gpus), tuple(g.index for g in gpus), {f"accelerator_type:{accelerator_type(gpus[0].name)}": 1}


class GpuIds:
    """Which of the node's GPUs each lease holds. A lease of less than one GPU shares an
    id (the fullest that fits, so whole GPUs stay free); whole GPUs get ids of their own."""

    def __init__(self, ids: tuple[int, ...]) -> None:
        self._free = {i: rs.SCALE for i in ids}

    def fits(self, amount: int) -> bool:
        """``assign(amount)`` would succeed."""
        if amount <= 0:
            return True
        if amount < rs.SCALE:
            return any(free >= amount for free in self._free.values())
        return sum(free == rs.SCALE for free in self._free.values()) >= -(-amount // rs.SCALE)

    def assign(self, amount: int) -> list[int] | None:
        """Ids for ``amount`` GPUs (fixed point); None when the free ones are too fragmented."""
        if amount <= 0:
            return []
        if amount < rs.SCALE:
            fits = [i for i, free in self._free.items() if free >= amount]
            if not fits:
                return None
            chosen = min(fits, key=lambda i: (self._free[i], i))
            self._free[chosen] -= amount
            return [chosen]
        whole = -(-amount // rs.SCALE)
        ids = [i for i, free in sorted(self._free.items()) if free == rs.SCALE][:whole]
        if len(ids) < whole:
            return None
        for i in ids:
            self._free[i] = 0
        return ids

    def release(self, ids: list[int], amount: int) -> None:
        """Give back what ``assign`` handed out for ``amount``."""
        if amount < rs.SCALE:
            for i in ids:
                self._free[i] = min(rs.SCALE, self._free[i] + amount)
        else:
            for i in ids:
                self._free[i] = rs.SCALE
