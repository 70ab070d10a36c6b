"""Runtime environments: what a job's processes run in (Ray's ``runtime_env``).

- :mod:`.spec` — :class:`RuntimeEnv`, the value: validated once where it enters
  (``init()``, ``JobSubmissionClient.submit_job``, the jobs API, the ``runtime_env``
  option of tasks and actors), then carried as is in job records, a job's environment,
  the driver's job config and a task's or actor's own ``JobConfig``.
- :mod:`.packages` — ``working_dir``/``py_modules`` as content-addressed zips
  (``gcs://`` URIs in the GCS's package store), safe to unpack from untrusted hands.
- :mod:`.setup` — on a node: fetch and unpack a job's packages once, for its processes.
"""

from nbcluster.runtime.runtime_env.spec import SUPPORTED_KEYS, RuntimeEnv, is_uri

__all__ = ["SUPPORTED_KEYS", "RuntimeEnv", "is_uri"]
