"""Every environment variable nbcluster reads or sets, and every namespace of the
GCS's key-value store, named once.

Code uses these names (``os.environ.get(envvars.TOKEN)``), never the spelled-out
strings, so a variable can be found, documented and renamed in one place.
"""

from __future__ import annotations

# --- set by users -------------------------------------------------------------
#: The cluster token, for a cluster not started on this machine (a token file's
#: contents). Never passed on to runtime processes or tasks.
TOKEN = "NBCLUSTER_TOKEN"
#: Where sessions live (default ``$XDG_RUNTIME_DIR/nbcluster`` or ``/tmp/nbcluster-<uid>``).
TEMP_DIR = "NBCLUSTER_TEMP_DIR"
#: Where object stores live (default ``/dev/shm/nbcluster-<uid>``).
SHM_DIR = "NBCLUSTER_SHM_DIR"
#: The per-user runtime directory of the login session (freedesktop), used when it is the user's.
XDG_RUNTIME_DIR = "XDG_RUNTIME_DIR"
#: ``1``: keep an embedded cluster's session directory (its logs) after it stops.
KEEP_SESSION = "NBCLUSTER_KEEP_SESSION"
#: ``0``: a driver does not print the autoscaler's decisions.
AUTOSCALER_EVENTS = "NBCLUSTER_AUTOSCALER_EVENTS"
#: The jobs API address ``nbcluster job`` and ``JobSubmissionClient`` use by default.
JOBS_ADDRESS = "NBCLUSTER_JOBS_ADDRESS"
#: The largest a remote function or actor class may be pickled, in bytes (Ray's
#: ``FUNCTION_SIZE_ERROR_THRESHOLD``, 100 MB by default).
FUNCTION_SIZE_ERROR_THRESHOLD = "NBCLUSTER_FUNCTION_SIZE_ERROR_THRESHOLD"
#: Seconds a worker node asked to stop (SIGTERM) drains before it leaves
#: (``RuntimeConfig.drain_timeout_s``); a worker pod's template sets it from its grace period.
DRAIN_TIMEOUT = "NBCLUSTER_DRAIN_TIMEOUT_S"

# --- set by the runtime for its own processes ---------------------------------
#: The runtime configuration (``RuntimeConfig``), serialized, for every runtime process.
CONFIG = "NBCLUSTER_CONFIG"
#: The number of an inherited pipe a runtime process reads its credential from, once.
CREDENTIAL_FD = "NBCLUSTER_CREDENTIAL_FD"
#: A job entrypoint's credential file (0600, removed when the job ends).
CREDENTIAL_FILE = "NBCLUSTER_CREDENTIAL_FILE"
#: A job's cluster (its GCS address): ``init()`` in a job's entrypoint joins it.
ADDRESS = "NBCLUSTER_ADDRESS"
#: The id of the job an entrypoint runs as.
JOB_ID = "NBCLUSTER_JOB_ID"
#: The job a supervisor runs (a serialized ``JobInfo``).
JOB = "NBCLUSTER_JOB"
#: A job's runtime environment as its entrypoint's driver applies it (JSON).
RUNTIME_ENV = "NBCLUSTER_RUNTIME_ENV"
#: The job a client-mode proxy registers for its client (a serialized ``ClientJob``).
CLIENT_JOB = "NBCLUSTER_CLIENT_JOB"

# --- namespaces of the GCS key-value store ------------------------------------
#: Working-directory and module packages (``gcs://`` URIs of runtime environments).
KV_PACKAGES = "packages"
#: Jobs' artifacts, keyed ``<job id hex>/<name>`` (e.g. a notebook job's ``executed.ipynb``).
KV_JOB_ARTIFACTS = "job_artifacts"
