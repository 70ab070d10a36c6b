"""``nbcluster job ...``: submit jobs and follow them from a shell (as ``ray job ...``).

A thin layer over :class:`nbcluster.job_submission.JobSubmissionClient`; every
subcommand takes ``--address`` (the head's jobs API, default: ``$NBCLUSTER_JOBS_ADDRESS``,
else the newest cluster on this machine) and ``--token-file``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import Any

from nbcluster.job_submission import JobSubmissionClient
from nbcluster.runtime.cli_view import table
from nbcluster.runtime.discovery import read_token_file
from nbcluster.runtime.states import JobStatus

ENTRYPOINT_WIDTH = 50
#: While ``job stop`` waits: say the job still runs this often (seconds).
STOP_REPORT_S = 5.0


# -- helpers ----------------------------------------------------------------------------
def _client(opts: argparse.Namespace) -> Any:
    token = read_token_file(opts.token_file) if opts.token_file else None
    return JobSubmissionClient(opts.address, token)


def _json_object(text: str | None, flag: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} must be a JSON object such as '{{\"key\": \"value\"}}': {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def _same_target(opts: argparse.Namespace) -> str:
    """The options that make a suggested command reach the same cluster."""
    out = ""
    if opts.address:
        out += f" --address {shlex.quote(opts.address)}"
    if opts.token_file:
        out += f" --token-file {shlex.quote(opts.token_file)}"
    return out


def _clock(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _clip(text: str, width: int = ENTRYPOINT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_chunk(chunk: str) -> None:
    sys.stdout.write(chunk)
    sys.stdout.flush()


def _follow(client: Any, job_id: str) -> bool:
    """Print the job's logs until it ends; whether the output ended with a newline."""
    last = "\n"
    for chunk in client.iter_job_logs(job_id):
        if chunk:
            _print_chunk(chunk)
            last = chunk[-1]
    return last == "\n"


def _final_report(info: Any) -> int:
    """Print how the job ended; the exit status for it (0 for SUCCEEDED)."""
    name = info.submission_id or info.job_id
    if info.status == JobStatus.SUCCEEDED:
        print(f"Job '{name}' succeeded")
        return 0
    print(f"Job '{name}' failed" if info.status == JobStatus.FAILED else f"Job '{name}' was stopped")
    if info.message:
        print(f"Status message: {info.message}")
    return 1


def _interrupted(job_id: str, opts: argparse.Namespace) -> int:
    print(f"\nStopped following the logs; job '{job_id}' keeps running. Stop it with:\n"
          f"  nbcluster job stop {shlex.quote(job_id)}{_same_target(opts)}", file=sys.stderr)
    return 130


# -- the subcommands --------------------------------------------------------------------
def cmd_submit(opts: argparse.Namespace) -> int:
    """``nbcluster job submit``: submit an entrypoint (and follow its logs unless --no-wait)."""
    words = list(opts.entrypoint)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise ValueError("give the command to run after --, e.g. `nbcluster job submit -- python script.py`")
    runtime_env = _json_object(opts.runtime_env_json, "--runtime-env-json") or {}
    if opts.working_dir is not None:
        runtime_env["working_dir"] = opts.working_dir
    client = _client(opts)
    job_id = client.submit_job(
        entrypoint=shlex.join(words),
        submission_id=opts.submission_id,
        runtime_env=runtime_env or None,
        metadata=_json_object(opts.metadata_json, "--metadata-json"),
        entrypoint_num_cpus=opts.entrypoint_num_cpus,
        entrypoint_num_gpus=opts.entrypoint_num_gpus,
        entrypoint_memory=opts.entrypoint_memory,
        entrypoint_resources=_json_object(opts.entrypoint_resources, "--entrypoint-resources"),
    )
    target, quoted = _same_target(opts), shlex.quote(job_id)
    print(f"Job '{job_id}' submitted successfully")
    if opts.no_wait:
        print(f"""Next steps
  Follow the logs of the job:
    nbcluster job logs {quoted} --follow{target}
  Query the status of the job:
    nbcluster job status {quoted}{target}
  Request the job to be stopped:
    nbcluster job stop {quoted}{target}""")
        return 0
    print("Tailing logs until the job exits (disable with --no-wait):", flush=True)
    try:
        if not _follow(client, job_id):
            print()
        info = client.get_job_info(job_id)
        if not info.status.is_terminal():  # the log stream broke off: poll
            client.wait_until_finished(job_id, poll=1.0)
            info = client.get_job_info(job_id)
    except KeyboardInterrupt:
        return _interrupted(job_id, opts)
    return _final_report(info)


def cmd_status(opts: argparse.Namespace) -> int:
    """``nbcluster job status``: a job's status and message."""
    info = _client(opts).get_job_info(opts.job_id)
    print(f"Status for job '{opts.job_id}': {info.status}")
    if info.message:
        print(f"Status message: {info.message}")
    p = info.progress
    if p.submitted or p.actors:
        print(f"Tasks: {p.submitted} submitted, {p.running} running, {p.finished} finished, "
              f"{p.failed} failed; actors: {p.actors}")
    return 0


def cmd_logs(opts: argparse.Namespace) -> int:
    """``nbcluster job logs``: a job's log (``--follow``: until it ends)."""
    client = _client(opts)
    if not opts.follow:
        _print_chunk(client.get_job_logs(opts.job_id))
        return 0
    try:
        _follow(client, opts.job_id)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_stop(opts: argparse.Namespace) -> int:
    """``nbcluster job stop``: stop a job (and wait for it to end unless --no-wait)."""
    client = _client(opts)
    print(f"Attempting to stop job '{opts.job_id}'")
    if not client.stop_job(opts.job_id):
        print(f"Job '{opts.job_id}' had already ended: {client.get_job_status(opts.job_id)}")
        return 0
    if opts.no_wait:
        return 0
    print(f"Waiting for job '{opts.job_id}' to exit (disable with --no-wait):", flush=True)
    said, said_at = None, 0.0
    while not (info := client.get_job_info(opts.job_id)).status.is_terminal():
        if info.status != said or time.monotonic() - said_at > STOP_REPORT_S:
            print(f"Job has not exited yet. Status: {info.status}", flush=True)
            said, said_at = info.status, time.monotonic()
        time.sleep(0.5)
    _final_report(info)
    return 0


def cmd_delete(opts: argparse.Namespace) -> int:
    """``nbcluster job delete``: delete a finished job."""
    _client(opts).delete_job(opts.job_id)
    print(f"Job '{opts.job_id}' deleted successfully")
    return 0


def cmd_list(opts: argparse.Namespace) -> int:
    """``nbcluster job list``: every job, as a table or JSON."""
    jobs = _client(opts).list_jobs()
    if opts.format == "json":
        print(json.dumps([job.to_json() for job in jobs], indent=1))
    elif jobs:
        rows = [[job.submission_id or job.job_id, job.type, job.status, _clip(job.entrypoint),
                 _clock(job.start_time), _clock(job.end_time)] for job in jobs]
        print(table(["ID", "TYPE", "STATUS", "ENTRYPOINT", "START", "END"], rows))
    else:
        print("(no jobs)")
    return 0


# -- the parser -------------------------------------------------------------------------
def add_job_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``nbcluster job`` and its subcommands to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", metavar="ADDR",
                        help="the head's jobs API, http://HOST:PORT (default: $NBCLUSTER_JOBS_ADDRESS, "
                             "else the newest cluster on this machine)")
    common.add_argument("--token-file", metavar="FILE",
                        help="a file holding the cluster's token (or set NBCLUSTER_TOKEN; not needed for "
                             "a cluster on this machine)")

    job = commands.add_parser("job", help="submit jobs to a cluster and follow them (as `ray job`)",
                              description="Submit jobs to a cluster over its jobs API and follow them.")
    job.set_defaults(func=lambda opts: _help(job))
    sub = job.add_subparsers(dest="job_command", metavar="SUBCOMMAND")

    submit = sub.add_parser("submit", parents=[common], help="run a shell command as a job",
                            usage="%(prog)s [options] [--no-wait] -- COMMAND [ARG ...]",
                            description="Run COMMAND (the words after --) as a job and follow its logs "
                                        "until it ends. Give every option before the --.")
    submit.add_argument("--working-dir", metavar="DIR",
                        help="a local directory to upload; the job runs in it (overrides working_dir "
                             "of --runtime-env-json)")
    submit.add_argument("--runtime-env-json", metavar="JSON",
                        help="runtime_env as JSON: working_dir, py_modules, env_vars, pip, uv")
    submit.add_argument("--submission-id", metavar="ID", help="the job's id (default: chosen by the cluster)")
    submit.add_argument("--entrypoint-num-cpus", type=float, metavar="N", help="CPUs reserved for the entrypoint")
    submit.add_argument("--entrypoint-num-gpus", type=float, metavar="N", help="GPUs reserved for the entrypoint")
    submit.add_argument("--entrypoint-memory", type=int, metavar="BYTES",
                        help="bytes of memory reserved for the entrypoint")
    submit.add_argument("--entrypoint-resources", metavar="JSON", help="custom resources for the entrypoint as JSON")
    submit.add_argument("--metadata-json", metavar="JSON", help="metadata as a JSON object of strings")
    submit.add_argument("--no-wait", action="store_true", help="return once submitted; do not follow the logs")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", parents=[common], help="the status of a job")
    status.add_argument("job_id", metavar="JOB_ID")
    status.set_defaults(func=cmd_status)

    logs = sub.add_parser("logs", parents=[common], help="the output of a job")
    logs.add_argument("job_id", metavar="JOB_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output until the job ends")
    logs.set_defaults(func=cmd_logs)

    stop = sub.add_parser("stop", parents=[common], help="stop a job")
    stop.add_argument("job_id", metavar="JOB_ID")
    stop.add_argument("--no-wait", action="store_true", help="return at once; do not wait until it has stopped")
    stop.set_defaults(func=cmd_stop)

    delete = sub.add_parser("delete", parents=[common], help="forget an ended job and its logs")
    delete.add_argument("job_id", metavar="JOB_ID")
    delete.set_defaults(func=cmd_delete)

    lister = sub.add_parser("list", parents=[common], help="list the jobs")
    lister.add_argument("--format", choices=("table", "json"), default="table")
    lister.set_defaults(func=cmd_list)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0
