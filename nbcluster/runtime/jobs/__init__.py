"""Jobs: the job manager on the head, job supervisors, the REST API, runtime_env packages."""
