"""The bounds of an update to a job's metadata (``Gcs.UpdateJobMetadata``), checked by
the state API before it sends one and by the GCS when it gets one.

Metadata maps strings to strings: a driver's says which kernel and notebook it is
(``kernel_id``, ``notebook_path``), a submitted job's is what its submitter gave. The
bounds keep a job's row small in the GCS's memory, its store and every ``GetAllJobs``
reply, while leaving room for any path a file system allows.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Keys one update may set.
MAX_UPDATE_KEYS = 16
#: Keys a job's metadata may hold after an update (a submitted job may have come with more).
MAX_KEYS = 64
#: UTF-8 bytes of a key (non-empty) and of a value (PATH_MAX for paths).
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 4096


def update_problem(current: Mapping[str, str], update: Mapping[str, str]) -> str | None:
    """What is wrong with setting ``update`` on metadata ``current`` (a sentence), or None."""
    if not update:
        return "give at least one key to set"
    if len(update) > MAX_UPDATE_KEYS:
        return f"an update sets at most {MAX_UPDATE_KEYS} keys, got {len(update)}"
    for key, value in update.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return f"metadata maps strings to strings, got {key!r}: {value!r}"
        if not key or len(key.encode()) > MAX_KEY_BYTES:
            return f"a metadata key must have 1 to {MAX_KEY_BYTES} bytes, got {key[:40]!r} ({len(key.encode())})"
        if len(value.encode()) > MAX_VALUE_BYTES:
            return f"the value of {key!r} has {len(value.encode())} bytes; at most {MAX_VALUE_BYTES} are allowed"
    total = len(set(current) | set(update))
    if total > max(MAX_KEYS, len(current)):
        return f"a job's metadata holds at most {MAX_KEYS} keys; this update would make it {total}"
    return None
