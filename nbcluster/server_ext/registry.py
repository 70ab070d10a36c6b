"""The server's files in Jupyter's runtime directory, all private to the user (0600).

- ``nbcluster-server-clusters.json``: the registry, ``{"clusters": [ClusterRecord...]}``,
  read at start-up to re-attach clusters that kept running. A cluster being made is
  saved (``"starting": true``) as soon as its session directory is known, so that a
  server killed while it starts does not orphan it.
- ``nbcluster-clusters.json``: the discovery file kernels read (``%cluster connect
  NAME``, :func:`nbcluster.kernel_ext.magics.discovery_clusters`):
  ``{"clusters": [{"name", "address", "token_file"}]}``.
- ``nbcluster-tokens/NAME``: tokens given inline to ``POST attach``, so the discovery
  file can name a token file for every cluster, and the token files of the clusters the
  server deploys on Kubernetes.

Writes go to a temporary file created 0600 and renamed over the old one, so a reader
never sees half a file and the contents are never readable by others, not even briefly
(:func:`nbcluster.runtime.write_private`). Reads take only a file that is
this user's alone (:func:`~nbcluster.runtime.read_private`): one another
user owns, or others can write, is ignored with a warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nbcluster.exceptions import InsecurePathError
from nbcluster.runtime import read_private, write_private
from nbcluster.server_ext.models import ClusterRecord

__all__ = ["DISCOVERY_FILE", "REGISTRY_FILE", "TOKENS_DIR", "Registry"]

logger = logging.getLogger(__name__)

#: Read by the kernel extension (nbcluster.kernel_ext.magics.DISCOVERY_FILE).
DISCOVERY_FILE = "nbcluster-clusters.json"
REGISTRY_FILE = "nbcluster-server-clusters.json"
TOKENS_DIR = "nbcluster-tokens"


class Registry:
    """The files of one server (one runtime directory)."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = Path(runtime_dir)
        self.records_path = self.runtime_dir / REGISTRY_FILE
        self.discovery_path = self.runtime_dir / DISCOVERY_FILE
        self.tokens_dir = self.runtime_dir / TOKENS_DIR

    def load(self) -> list[ClusterRecord]:
        """The records saved last; none when the file is missing or unreadable."""
        try:
            data = json.loads(read_private(self.records_path, "Remove it"))
            return [ClusterRecord.from_json(r) for r in data.get("clusters", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, AttributeError, InsecurePathError) as exc:
            logger.warning("ignoring the unreadable cluster registry %s: %s", self.records_path, exc)
            return []

    def save(self, records: Iterable[ClusterRecord], discoverable: Iterable[str] | None = None) -> None:
        """Save the records and rewrite the discovery file to match: it lists the
        records named in ``discoverable`` (all when None), the clusters kernels can use."""
        records = list(records)
        names = None if discoverable is None else set(discoverable)
        write_private(self.records_path, json.dumps({"clusters": [r.to_json() for r in records]}, indent=1))
        listed: list[dict[str, Any]] = [
            {"name": r.name, "address": r.address, "token_file": r.token_file}
            for r in records if names is None or r.name in names
        ]
        write_private(self.discovery_path, json.dumps({"clusters": listed}, indent=1))

    def token_path(self, name: str) -> Path:
        """Where the token file of the cluster ``name`` goes (:meth:`store_token` writes
        it there; so does a deploy on Kubernetes)."""
        return self.tokens_dir / name

    def store_token(self, name: str, token: str) -> Path:
        """Keep an inline token in a file of its own (0600); returns its path."""
        path = self.token_path(name)
        write_private(path, token)
        return path

    def drop_token(self, token_file: str) -> None:
        """Remove a token file this registry wrote (never one the user named)."""
        path = Path(token_file)
        if path.parent == self.tokens_dir:
            path.unlink(missing_ok=True)

