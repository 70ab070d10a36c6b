"""The core worker: the runtime inside every driver and worker process."""

