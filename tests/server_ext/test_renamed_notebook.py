"""A notebook renamed as JupyterLab renames it — the file through the contents API, then
its session's path and name — against a real ``jupyter server`` with the extension and a
real kernel connected to a cluster it started: the driver's job follows, so the kernel's
``nbcluster.state.list_jobs()``, its live cluster widget (without running a cell that
touches it), ``nbcluster list jobs`` and the server's REST API all name the new file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import nbformat
import pytest

from .test_notebook_clusters import execute
from .test_page_browser import page_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: In the kernel: wait (deadline) until the GCS, the view's model and the job's label all
#: name NAME; print what they say.
WAIT_FOR_NAME = """
import os, time
import nbcluster
view = get_ipython().magics_manager.registry["ClusterMagics"].view
job = nbcluster.get_runtime_context().get_job_id()

def seen():
    (mine,) = [j for j in nbcluster.state.list_jobs() if j.job_id == job]
    label = view._job_rows[job].children[0].get_state()["value"]
    return mine.metadata.get("notebook_path", ""), view.jobs[job]["entrypoint"], label

deadline = time.monotonic() + 60
while True:
    path, entry, label = seen()
    if os.path.basename(path) == NAME and entry == NAME and NAME in label:
        break
    assert time.monotonic() < deadline, f"still {(path, entry, label)}"
    time.sleep(0.05)
print("SEEN", job, json.dumps([path, entry]))
"""


def names(server: object, kernel_id: str, name: str) -> tuple[str, str, str]:
    """(job id, notebook_path, the widget's name of the job) once they all say ``name``."""
    out = execute(server, kernel_id, f"import json\nNAME = {name!r}\n" + WAIT_FOR_NAME)
    job, seen = re.search(r"SEEN (\S+) (.+)", out).groups()
    path, entry = json.loads(seen)
    return job, path, entry


def test_a_renamed_notebooks_driver_is_renamed_everywhere() -> None:
    with page_server() as (server, _tag):
        code, _ = server.request("PUT", "api/contents/a.ipynb",
                                 {"type": "notebook", "format": "json", "content": nbformat.v4.new_notebook()})
        assert code == 201
        code, session = server.request("POST", "api/sessions", {
            "path": "a.ipynb", "type": "notebook", "name": "a.ipynb", "kernel": {"name": "python3"}})
        assert code == 201, session
        kernel_id = session["kernel"]["id"]
        try:
            out = execute(server, kernel_id, "%load_ext nbcluster\n%cluster start --num-cpus 1\nimport nbcluster\n"
                          "print('HEAD', nbcluster.state.get_head_state().gcs_address)")
            address = re.search(r"HEAD (\S+)", out).group(1)
            job, path, entry = names(server, kernel_id, "a.ipynb")
            assert path == str(server.root_dir / "a.ipynb") and entry == "a.ipynb"  # Jupyter's absolute path
            # The server knows the cluster too (attached by address): its drivers are listed by name.
            code, attached = server.request("POST", "nbcluster/api/attach", {"name": "nb", "address": address})
            assert code in (200, 201), attached

            # JupyterLab's rename: the file, then the session's path, then its name.
            renamed_at = time.monotonic()
            code, model = server.request("PATCH", "api/contents/a.ipynb", {"path": "b.ipynb"})
            assert code == 200 and model["path"] == "b.ipynb", model
            for change in ({"path": "b.ipynb"}, {"name": "b.ipynb"}):
                code, moved = server.request("PATCH", f"api/sessions/{session['id']}", change)
                assert code == 200, moved
            assert names(server, kernel_id, "b.ipynb") == (job, str(server.root_dir / "b.ipynb"), "b.ipynb")
            print(f"the kernel saw the new name {time.monotonic() - renamed_at:.2f} s after the rename")

            cli = subprocess.run([sys.executable, "-m", "nbcluster.runtime.cli", "list", "jobs", "--address", address],
                                 capture_output=True, text=True, timeout=120)
            assert cli.returncode == 0, cli.stderr
            (row,) = [line for line in cli.stdout.splitlines() if line.startswith(job)]
            assert row.endswith("/b.ipynb") and "RUNNING" in row, cli.stdout
            code, cluster = server.request("GET", "nbcluster/api/clusters/nb")
            assert [(d["job_id"], d["notebook_path"]) for d in cluster["drivers"]] == [(job, "b.ipynb")], cluster

            # Moved into a new directory by its session alone (JupyterLab's "Save As" moves the session).
            code, _ = server.request("PUT", "api/contents/sub", {"type": "directory"})
            assert code == 201
            code, moved = server.request("PATCH", f"api/sessions/{session['id']}", {"path": "sub/c.ipynb"})
            assert code == 200, moved
            assert names(server, kernel_id, "c.ipynb") == (job, str(server.root_dir / "sub" / "c.ipynb"), "c.ipynb")
        finally:
            try:
                execute(server, kernel_id, "%cluster stop")
            finally:
                server.request("DELETE", f"api/sessions/{session['id']}")
