"""Starting a head node (GCS + node manager) on this machine.

``nbcluster.init()`` with no address uses :func:`start_local_cluster` with a
lifeline: the processes exit when the driver does, also when it is killed, and the
head then removes the session directory. Head and node manager start in parallel:
the node manager dials the GCS's framed endpoint, known before the GCS is up.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field

from nbcluster.runtime import ids
from nbcluster.runtime.config import RuntimeConfig
from nbcluster.runtime.procutil import spawn_python, terminate, wait_exit
from nbcluster.runtime.session import TOKEN_ENV, Session, new_session, remove_session

#: Set to 1 to keep an embedded cluster's session directory (logs) after it stops.
KEEP_SESSION_ENV = "NBCLUSTER_KEEP_SESSION"


@dataclass
class LocalCluster:
    session: Session
    token: str
    node_id: bytes
    gcs_endpoint: str
    node_endpoint: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    lifeline: int | None = None
    embedded: bool = True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the processes (closing the lifeline asks them to) and wait for them."""
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
        else:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.terminate()
        if not wait_exit(self.procs, timeout):
            terminate(self.procs, 1.0)
        if self.embedded and os.environ.get(KEEP_SESSION_ENV, "") in ("", "0"):
            remove_session(self.session)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)


def start_local_cluster(
    *,
    num_cpus: float,
    num_gpus: float = 0,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    config: RuntimeConfig | None = None,
    embedded: bool = True,
    head_port: int = 0,
    host: str = "127.0.0.1",
) -> LocalCluster:
    """Start a GCS and a head node manager; return without waiting for them."""
    config = config or RuntimeConfig.load()
    session, token = new_session()
    node_id = ids.random_id()
    gcs_endpoint = session.endpoint("gcs")
    env = {TOKEN_ENV: token, "NBCLUSTER_CONFIG": config.to_env()}
    lifeline_r = lifeline_w = None
    if embedded:
        lifeline_r, lifeline_w = os.pipe()
        os.set_inheritable(lifeline_r, True)
    life = ["--lifeline-fd", str(lifeline_r)] if lifeline_r is not None else []
    fds = (lifeline_r,) if lifeline_r is not None else ()
    head_args = ["--session-dir", str(session.dir), "--host", host, "--port", str(head_port), *life]
    keep = os.environ.get(KEEP_SESSION_ENV, "") not in ("", "0")
    if embedded and not keep:
        head_args.append("--remove-session-on-exit")
    node_args = [
        "--session-dir", str(session.dir),
        "--node-id", node_id.hex(),
        "--gcs-address", gcs_endpoint,
        "--num-cpus", str(num_cpus),
        "--num-gpus", str(num_gpus),
        "--node-ip", host,
        "--head",
        *life,
    ]
    if resources:
        node_args += ["--resources", json.dumps(resources)]
    if object_store_memory:
        node_args += ["--object-store-memory", str(int(object_store_memory))]
    procs = []
    try:
        procs.append(
            spawn_python("nbcluster.runtime.gcs", head_args, log_dir=session.logs, log_name="gcs", env=env, pass_fds=fds)
        )
        procs.append(
            spawn_python(
                "nbcluster.runtime.node",
                node_args,
                log_dir=session.logs,
                log_name=f"node-{node_id.hex()[:12]}",
                env=env,
                pass_fds=fds,
            )
        )
    except BaseException:
        terminate(procs, 1.0)
        if lifeline_w is not None:
            os.close(lifeline_w)
        remove_session(session)
        raise
    finally:
        if lifeline_r is not None:
            os.close(lifeline_r)
    if lifeline_w is not None:
        os.set_inheritable(lifeline_w, False)
    return LocalCluster(
        session=session,
        token=token,
        node_id=node_id,
        gcs_endpoint=gcs_endpoint,
        node_endpoint=session.endpoint(f"node-{node_id.hex()[:12]}"),
        procs=procs,
        lifeline=lifeline_w,
        embedded=embedded,
    )
