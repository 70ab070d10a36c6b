"""Reading and writing objects in a node's shared-memory directory (client side).

A writer creates the file only after the node manager reserved room for it, fills
it with one ``pwrite`` per buffer, and seals it. A reader maps it read-only: values
that hold out-of-band buffers (numpy arrays) are views into the mapping, and the
mapping lives as long as they do.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from nbcluster.runtime.objects.serialization import SerializedObject


def write_object(directory: str, object_id: bytes, obj: SerializedObject) -> None:
    path = os.path.join(directory, object_id.hex())
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, obj.total_size)
        obj.write_fd(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def map_object(directory: str, object_id: bytes) -> mmap.mmap | None:
    """The object's file mapped read-only, or None if the store has no such file
    (not created here, or spilled to disk)."""
    try:
        fd = os.open(os.path.join(directory, object_id.hex()), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        return mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def exists(directory: str, object_id: bytes) -> bool:
    return Path(directory, object_id.hex()).exists()
