"""Files a job keeps on its cluster's head: its artifacts (a notebook job's executed
notebook).

An artifact lives in the GCS's key-value store, namespace
:data:`~nbcluster.runtime.envvars.KV_JOB_ARTIFACTS`, key ``<job id hex>/<name>``; the
Jobs API serves it (``GET /api/jobs/{id}/artifacts/{name}``,
``JobSubmissionClient.get_job_artifact``) and removes it with the job.
"""

from __future__ import annotations

import os

from nbcluster.runtime import discovery, envvars
from nbcluster.runtime.credentials import given_token
from nbcluster.runtime.protocol import gcs_pb2
from nbcluster.runtime.transport import methods

__all__ = ["keep_job_artifact"]


def keep_job_artifact(name: str, data: bytes) -> None:
    """Store ``data`` on the head as the running job's artifact ``name``, replacing
    one of that name. Call it from a job's entrypoint: the job's id and cluster come
    from its environment (KeyError outside a job). Failures to reach the head raise
    as :func:`nbcluster.runtime.transport.errors.public_error` maps them."""
    job_id = os.environ[envvars.JOB_ID]
    request = gcs_pb2.KvPutRequest(
        namespace=envvars.KV_JOB_ARTIFACTS, key=f"{job_id}/{name}".encode(), value=data, overwrite=True
    )
    target = discovery.gcs_target(os.environ[envvars.ADDRESS], given_token())
    discovery.call_gcs(target, methods.Gcs.KvPut, request)
