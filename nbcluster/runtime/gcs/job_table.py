"""The GCS's job table: one row per driver or submitted job, kept in the store.

A driver's job is RUNNING from its registration until it finishes (or its driver's
connection or node goes); a submitted job moves PENDING → RUNNING → an end state as
the job manager (``jobs/manager.py``) reports. Every change is a ``JOB_STATE`` event,
also a change of a running job's metadata (``UpdateJobMetadata``: a renamed notebook's
driver follows its new path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nbcluster.runtime import ids
from nbcluster.runtime.job_metadata import update_problem
from nbcluster.runtime.gcs.pubsub import EventLog
from nbcluster.runtime.gcs.store import GcsStore
from nbcluster.runtime.gcs.tasks import TaskTable
from nbcluster.runtime.protocol import common_pb2, gcs_pb2
from nbcluster.runtime.states import JOB_TRANSITIONS, JobStatus, StateMachine
from nbcluster.runtime.transport import framed
from nbcluster.runtime.transport.errors import RemoteError

_JOB_STATE_PB = {
    JobStatus.PENDING: gcs_pb2.JOB_STATE_PENDING,
    JobStatus.RUNNING: gcs_pb2.JOB_STATE_RUNNING,
    JobStatus.SUCCEEDED: gcs_pb2.JOB_STATE_SUCCEEDED,
    JobStatus.FAILED: gcs_pb2.JOB_STATE_FAILED,
    JobStatus.STOPPED: gcs_pb2.JOB_STATE_STOPPED,
}
_JOB_STATE_FROM_PB = {v: k for k, v in _JOB_STATE_PB.items()}


class _Job:
    __slots__ = ("info", "machine")

    def __init__(self, info: gcs_pb2.JobInfo, status: JobStatus) -> None:
        self.info = info
        self.machine = StateMachine(JOB_TRANSITIONS, status)


class JobTable:
    """The job rows, their state machines and their events. ``recover(store)`` loads
    the rows of a previous head and must come before any other call that writes."""

    def __init__(self, events: EventLog, tasks: TaskTable, stopping: asyncio.Event) -> None:
        self._events = events
        self._tasks = tasks
        #: Set when the GCS begins to stop: the store takes no more writes (a driver's
        #: connection the stopping head closes is no end of its job).
        self._stopping = stopping
        self._jobs: dict[bytes, _Job] = {}
        self._store: GcsStore | None = None
        #: Called with a job's id when it ends (the GCS's placement groups listen).
        self.on_finish: list[Callable[[bytes], None]] = []

    def recover(self, store: GcsStore) -> list[gcs_pb2.JobInfo]:
        """Load the jobs ``store`` holds. A submitted job that was running ends FAILED
        (its supervisor ended it when it lost the head); a driver's job that was running
        stays RUNNING: returned, for the head to check its driver is still there."""
        self._store = store
        drivers = []
        for info in store.jobs():
            status = _JOB_STATE_FROM_PB.get(info.state, JobStatus.FAILED)
            if status is JobStatus.RUNNING and info.type == gcs_pb2.JOB_TYPE_DRIVER and info.driver.endpoint:
                drivers.append(info)
            elif status in (JobStatus.PENDING, JobStatus.RUNNING):
                status = JobStatus.FAILED
                info.state = _JOB_STATE_PB[status]
                info.end_time = time.time()
                info.message = "the head restarted while the job was running"
                store.put_job(info)
            self._jobs[info.job_id] = _Job(info, status)
        return drivers

    # -- what drivers ask (RegisterJob, FinishJob, GetAllJobs) ----------------------
    def register(self, info: gcs_pb2.JobInfo, conn: Any) -> gcs_pb2.JobInfo:
        """A driver connected: a new DRIVER job, or the driver of a submitted job.
        A driver over a local socket whose connection closes ends its job FAILED."""
        assert self._store is not None
        if info.job_id and info.job_id in self._jobs:
            job = self._jobs[info.job_id]
            if job.info.type == gcs_pb2.JOB_TYPE_SUBMISSION:
                # The entrypoint's driver connected: the job is its (one driver per job).
                job.info.driver.CopyFrom(info.driver)
                job.info.driver_pid = info.driver_pid
                job.info.driver_hostname = info.driver_hostname
                job.info.config.CopyFrom(info.config)
                self._store.put_job(job.info)
        else:
            info.job_id = ids.job_id_from_int(self._store.next_counter("job"))
            info.start_time = time.time()
            info.type = info.type or gcs_pb2.JOB_TYPE_DRIVER
            status = JobStatus.RUNNING if info.type == gcs_pb2.JOB_TYPE_DRIVER else JobStatus.PENDING
            info.state = _JOB_STATE_PB[status]
            job = _Job(info, status)
            self._jobs[info.job_id] = job
            self._store.put_job(info)
            self._event(job)
        if isinstance(conn, framed.Connection) and job.info.type == gcs_pb2.JOB_TYPE_DRIVER:
            conn.on_close(
                lambda _c, jid=job.info.job_id: self.finish(
                    jid, JobStatus.FAILED, "the driver exited without calling shutdown()"
                )
            )
        return job.info

    def finish_request(self, request: gcs_pb2.FinishJobRequest) -> None:
        """A driver finished its job (a submitted job ends when its entrypoint exits)."""
        status = _JOB_STATE_FROM_PB.get(request.state, JobStatus.SUCCEEDED)
        if request.job_id not in self._jobs:
            raise RemoteError(common_pb2.ERROR_CODE_NOT_FOUND, f"no job {request.job_id.hex()}")
        if self._jobs[request.job_id].info.type == gcs_pb2.JOB_TYPE_SUBMISSION:
            return
        self.finish(request.job_id, status, request.message)

    def update_metadata(self, request: gcs_pb2.UpdateJobMetadataRequest) -> gcs_pb2.UpdateJobMetadataReply:
        """Set keys of the metadata of a job that has not ended; stored, and a JOB_STATE
        event when a value changed. NOT_FOUND for an unknown job, INVALID_ARGUMENT for an
        ended one or an update past the bounds (``job_metadata.py``)."""
        job = self._jobs.get(request.job_id)
        if job is None:
            raise RemoteError(common_pb2.ERROR_CODE_NOT_FOUND, f"the cluster has no job {request.job_id.hex()}")
        if job.machine.is_terminal():
            raise RemoteError(
                common_pb2.ERROR_CODE_INVALID_ARGUMENT,
                f"job {_name(job)} has ended ({job.machine.state.value}): its metadata no longer changes",
            )
        problem = update_problem(job.info.metadata, request.metadata)
        if problem is not None:
            raise RemoteError(common_pb2.ERROR_CODE_INVALID_ARGUMENT, problem)
        changed = sorted(k for k, v in request.metadata.items() if job.info.metadata.get(k) != v)
        if changed:
            job.info.metadata.update(request.metadata)
            self.save(job.info)
            shown = ", ".join(f"{k}={request.metadata[k]}" for k in changed)
            self._event(job, f"Job {_name(job)} metadata: {shown}", changed)
        return gcs_pb2.UpdateJobMetadataReply(job=job.info, changed=bool(changed))

    def all_jobs(self) -> gcs_pb2.GetAllJobsReply:
        """Every row, with the task counts of the jobs that submitted tasks."""
        progress = []
        for job_id in self._jobs:
            counts = self._tasks.progress(job_id)
            if counts["submitted"]:
                progress.append(gcs_pb2.JobProgress(job_id=job_id, **counts))
        return gcs_pb2.GetAllJobsReply(jobs=[j.info for j in self._jobs.values()], progress=progress)

    def driver_node_died(self, node_id: bytes) -> None:
        """The jobs whose driver ran on ``node_id`` end FAILED."""
        for job in self._jobs.values():
            if job.info.driver.node_id == node_id:
                self.finish(job.info.job_id, JobStatus.FAILED, "its driver's node died")

    # -- rows, for the job manager and the actor manager ----------------------------
    def infos(self) -> list[gcs_pb2.JobInfo]:
        """Every job's row."""
        return [j.info for j in self._jobs.values()]

    def info(self, job_id: bytes) -> gcs_pb2.JobInfo | None:
        """The row of ``job_id``, None if there is none."""
        job = self._jobs.get(job_id)
        return job.info if job is not None else None

    def status(self, job_id: bytes) -> JobStatus:
        """The state of ``job_id`` (KeyError if there is no such job)."""
        return self._jobs[job_id].machine.state  # type: ignore[return-value]

    def add(self, info: gcs_pb2.JobInfo) -> gcs_pb2.JobInfo:
        """A new submitted job, PENDING, with its job id and start time set."""
        assert self._store is not None
        info.job_id = ids.job_id_from_int(self._store.next_counter("job"))
        info.start_time = time.time()
        info.state = gcs_pb2.JOB_STATE_PENDING
        job = self._jobs[info.job_id] = _Job(info, JobStatus.PENDING)
        self._store.put_job(info)
        self._event(job)
        return info

    def save(self, info: gcs_pb2.JobInfo) -> None:
        """Write a changed row to the store."""
        if self._store is not None and not self._stopping.is_set():
            self._store.put_job(info)

    def set_status(self, job_id: bytes, status: JobStatus, message: str) -> None:
        """Move ``job_id`` to ``status`` (an end state finishes it)."""
        job = self._jobs[job_id]
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            self.finish(job_id, status, message)
            return
        if job.machine.state is status:
            return
        job.machine.transition(status)
        job.info.state = _JOB_STATE_PB[status]
        job.info.message = message
        self.save(job.info)
        self._event(job)

    def remove(self, job_id: bytes) -> None:
        """Forget ``job_id`` (a finished job deleted through the Jobs API)."""
        self._jobs.pop(job_id, None)
        if self._store is not None:
            self._store.delete_job(job_id)

    def finish(self, job_id: bytes, status: JobStatus, message: str) -> None:
        """End ``job_id`` in ``status`` (nothing if it has ended); its unfinished tasks fail."""
        job = self._jobs.get(job_id)
        if job is None or job.machine.is_terminal():
            return
        job.machine.transition(status)
        job.info.state = _JOB_STATE_PB[status]
        job.info.end_time = time.time()
        job.info.message = message
        self.save(job.info)
        self._tasks.job_finished(job_id, f"its job ended ({message or status.value}) before it finished")
        self._event(job)
        for hook in self.on_finish:
            hook(job_id)

    def _event(self, job: _Job, message: str = "", changed: list[str] | None = None) -> None:
        """A JOB_STATE event with the job's row: its state changed (the default message), or
        the ``changed`` keys of its metadata."""
        state = job.machine.state.value
        detail = f": {job.info.message}" if job.info.message else ""
        data = {
            "state": state,
            "type": gcs_pb2.JobType.Name(job.info.type),
            "pid": job.info.driver_pid,
            "submission_id": job.info.submission_id,
            "entrypoint": job.info.entrypoint,
            "metadata": dict(job.info.metadata),
        }
        if changed:
            data["changed"] = changed
        self._events.publish(
            gcs_pb2.EventKind.EVENT_KIND_JOB_STATE,
            message or f"Job {_name(job)} is {state}{detail}",
            job_id=job.info.job_id,
            data=data,
        )


def _name(job: _Job) -> str:
    """How events name a job: its submission id, else its number."""
    return job.info.submission_id or f"{ids.job_id_to_int(job.info.job_id):02d}"
