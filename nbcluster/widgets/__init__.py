"""Live views of the cluster for Jupyter (ipywidgets only, no frontend build step).

    from nbcluster.widgets import ClusterWidget, JobWidget
    ClusterWidget()            # nodes, autoscaler decisions, jobs, updated as they happen
    JobWidget("my-job-id")     # status, task progress, log tail, Stop button
    progress()                 # this driver's tasks by function: pending, running, finished, failed
    progress(refs)             # the tasks behind some ObjectRefs
    auto_progress(100)         # a progress view under every cell that submits more than 100 tasks

Every widget is fed by one event subscriber per process, with updates coalesced to at
most ~10 a second; where no widget frontend runs, they show static HTML (or text).
"""

from .cluster import ClusterWidget
from .job import JobWidget
from .auto import auto_progress
from .progress import ProgressWidget, progress

__all__ = ["ClusterWidget", "JobWidget", "ProgressWidget", "auto_progress", "progress"]
