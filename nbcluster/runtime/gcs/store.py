"""The GCS tables, kept in SQLite in the session directory so a restarted head
recovers them. Rows are protobuf messages; SQLite only indexes them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nbcluster.runtime.protocol import gcs_pb2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (node_id BLOB PRIMARY KEY, info BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS node_digests (node_id BLOB PRIMARY KEY, digest BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (job_id BLOB PRIMARY KEY, info BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS actors (actor_id BLOB PRIMARY KEY, info BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS placement_groups (group_id BLOB PRIMARY KEY, info BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
                               PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class GcsStore:
    """Write-through persistence of nodes, jobs, actors, placement groups, KV and counters."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # nodes and jobs
    def put_node(self, node: gcs_pb2.NodeInfo, digest: bytes = b"") -> None:
        """Write a node's row (and, when given, the digest of its node manager's secret)."""
        self._db.execute(
            "INSERT OR REPLACE INTO nodes VALUES (?, ?)", (node.node_id, node.SerializeToString())
        )
        if digest:
            self._db.execute("INSERT OR REPLACE INTO node_digests VALUES (?, ?)", (node.node_id, digest))

    def node_digests(self) -> dict[bytes, bytes]:
        """The digest of each node manager's secret, by node id."""
        return dict(self._db.execute("SELECT node_id, digest FROM node_digests"))

    def nodes(self) -> list[gcs_pb2.NodeInfo]:
        """Every stored node row."""
        return [gcs_pb2.NodeInfo.FromString(row[0]) for row in self._db.execute("SELECT info FROM nodes")]

    def put_job(self, job: gcs_pb2.JobInfo) -> None:
        """Write a job's row."""
        self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (job.job_id, job.SerializeToString()))

    def delete_job(self, job_id: bytes) -> None:
        """Delete a job's row."""
        self._db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def jobs(self) -> list[gcs_pb2.JobInfo]:
        """Every stored job row."""
        return [gcs_pb2.JobInfo.FromString(row[0]) for row in self._db.execute("SELECT info FROM jobs")]

    def put_actor(self, actor: gcs_pb2.ActorInfo) -> None:
        """Write an actor's row."""
        self._db.execute(
            "INSERT OR REPLACE INTO actors VALUES (?, ?)", (actor.actor_id, actor.SerializeToString())
        )

    def actors(self) -> list[gcs_pb2.ActorInfo]:
        """Every stored actor row."""
        return [gcs_pb2.ActorInfo.FromString(row[0]) for row in self._db.execute("SELECT info FROM actors")]

    def put_placement_group(self, group: gcs_pb2.PlacementGroupInfo) -> None:
        """Write a placement group's row."""
        self._db.execute(
            "INSERT OR REPLACE INTO placement_groups VALUES (?, ?)",
            (group.placement_group_id, group.SerializeToString()),
        )

    def placement_groups(self) -> list[gcs_pb2.PlacementGroupInfo]:
        """Every stored placement group row."""
        rows = self._db.execute("SELECT info FROM placement_groups")
        return [gcs_pb2.PlacementGroupInfo.FromString(row[0]) for row in rows]

    # counters
    def next_counter(self, name: str) -> int:
        """Increment the counter ``name`` (from 1) and return its new value."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
        value = int(row[0]) + 1 if row else 1
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, str(value)))
        return value

    # KV
    def kv_put(self, ns: str, key: bytes, value: bytes, overwrite: bool) -> bool:
        """Set ``key`` in namespace ``ns``; False (and nothing written) when it exists and
        ``overwrite`` is false."""
        exists = self.kv_get(ns, key) is not None
        if exists and not overwrite:
            return False
        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, value))
        return not exists

    def kv_get(self, ns: str, key: bytes) -> bytes | None:
        """The value of ``key`` in ``ns``, None if unset."""
        row = self._db.execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return row[0] if row else None

    def kv_del(self, ns: str, key: bytes, by_prefix: bool) -> int:
        """Delete ``key`` (or, ``by_prefix``, every key starting with it); how many went."""
        if by_prefix:
            keys = self.kv_keys(ns, key)
            self._db.executemany("DELETE FROM kv WHERE ns = ? AND key = ?", [(ns, k) for k in keys])
            return len(keys)
        return self._db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key)).rowcount

    def kv_keys(self, ns: str, prefix: bytes) -> list[bytes]:
        """The keys of ``ns`` that start with ``prefix``."""
        rows = self._db.execute("SELECT key FROM kv WHERE ns = ?", (ns,))
        return [bytes(r[0]) for r in rows if bytes(r[0]).startswith(prefix)]
