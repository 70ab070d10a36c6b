"""A real ipykernel driven over its channels, collecting every iopub message."""

from __future__ import annotations

import queue
import time
from typing import Any

from jupyter_client.manager import KernelManager, start_new_kernel


class Kernel:
    def __init__(self, connection_file: str | None = None, env: dict[str, str] | None = None) -> None:
        """A new python3 kernel; ``connection_file`` names its connection file (Jupyter
        servers call it ``kernel-<id>.json``), ``env`` its environment."""
        self.messages: list[dict] = []
        if connection_file is None and env is None:
            self.km, self.kc = start_new_kernel(kernel_name="python3")
            return
        self.km = KernelManager(kernel_name="python3", connection_file=connection_file or "")
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=60)
        except RuntimeError:
            self.close()
            raise

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)

    def _drain(self, until_idle: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the kernel did not finish within {timeout} s")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 0.5))
            except queue.Empty:
                if until_idle is None:
                    return
                continue
            self.messages.append(msg)
            if (
                until_idle is not None
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == until_idle
            ):
                return

    def execute(self, code: str, timeout: float = 120.0, wait: bool = True) -> str:
        msg_id = self.kc.execute(code)
        if wait:
            self._drain(msg_id, timeout)
        return msg_id

    def wait(self, msg_id: str, timeout: float = 120.0) -> None:
        self._drain(msg_id, timeout)

    def outputs(self, msg_id: str) -> list[dict]:
        return [m for m in self.messages if m["parent_header"].get("msg_id") == msg_id
                and m["msg_type"] in ("stream", "execute_result", "display_data", "error")]

    def text(self, msg_id: str, name: str | None = None) -> str:
        return "".join(m["content"]["text"] for m in self.outputs(msg_id)
                       if m["msg_type"] == "stream" and (name is None or m["content"]["name"] == name))

    def error(self, msg_id: str) -> dict | None:
        return next((m["content"] for m in self.outputs(msg_id) if m["msg_type"] == "error"), None)

    def result(self, msg_id: str) -> Any:
        for m in self.outputs(msg_id):
            if m["msg_type"] == "execute_result":
                return m["content"]["data"].get("text/plain")
        return None

    def collect(self, seconds: float) -> None:
        """Keep reading iopub for ``seconds`` (late output of finished cells)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.messages.append(self.kc.get_iopub_msg(timeout=0.1))
            except queue.Empty:
                pass
