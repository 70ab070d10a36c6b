"""Run a notebook as a batch job: ``python -m nbcluster.kernel_ext.run_notebook NB.ipynb``
(the entrypoint ``%cluster submit --notebook`` submits).

The notebook runs headless top to bottom (nbclient, a fresh ipykernel) in the job's
working directory; its kernel inherits the job's environment, so ``%cluster connect``
or ``nbcluster.init()`` in it join the cluster as this job. The executed notebook, with
its outputs, is written next to it as ``NB.executed.ipynb`` and kept on the head as the
job's artifact ``executed.ipynb`` (``JobSubmissionClient.get_job_artifact``). A cell
that raises ends the job FAILED (exit code 1), after the artifact is kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nbcluster.runtime import keep_job_artifact

ARTIFACT = "executed.ipynb"


def main() -> int:
    """Run the notebook named on the command line; 0 when every cell ran, 1 when one raised."""
    parser = argparse.ArgumentParser(prog="python -m nbcluster.kernel_ext.run_notebook")
    parser.add_argument("notebook", help="the .ipynb to run, relative to the working directory")
    parser.add_argument("--timeout", type=float, default=None, help="seconds a cell may take (default: no limit)")
    opts = parser.parse_args()
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(opts.notebook)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=opts.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as exc:
        failed = exc
    executed = path.with_name(path.stem + ".executed.ipynb")
    nbformat.write(notebook, executed)
    keep_job_artifact(ARTIFACT, executed.read_bytes())
    for cell in notebook.cells:  # the outputs in the job's log too
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                sys.stdout.write(out.get("text", ""))
    if failed is not None:
        print(f"\nthe notebook failed: {str(failed).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    print(f"\nran {path.name}; the executed notebook is the job's artifact {ARTIFACT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
