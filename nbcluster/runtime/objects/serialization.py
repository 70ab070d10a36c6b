"""How values become bytes: cloudpickle with pickle protocol 5 out-of-band buffers.

Layout of a serialized object (inline in a message, or a file in shared memory)::

    <3s magic "NB1"><u8 flags><u32 nbuf><u64 pickle length><u64 length> * nbuf
    <pickle bytes><pad to 64><buffer 0><pad to 64><buffer 1>...

Buffers (numpy arrays, bytes-like objects that support out-of-band pickling) start at
64-byte aligned offsets, so a mapped file yields aligned zero-copy arrays.

ObjectRefs met while pickling are collected, so the runtime knows which references
a value contains.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import pickle
import struct
import threading
import types
from collections.abc import Iterator
from typing import Any

import cloudpickle

from nbcluster.runtime import envvars

MAGIC = b"NB1"
FLAG_ERROR = 1
_HEAD = struct.Struct("<3sBIQ")
ALIGN = 64
_FAST_TYPES = frozenset({int, float, str, bytes, bool, type(None)})

_context = threading.local()


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def _reduce_code(code: types.CodeType) -> Any:
    # cloudpickle writes "<dynamic-code>" as every function's file name; keep the real
    # one so remote tracebacks point at the user's file (and show its lines).
    ctor, args = cloudpickle.cloudpickle._code_reduce(code)
    return ctor, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)


class _Pickler(cloudpickle.Pickler):
    dispatch_table = collections.ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)


def dumps(value: Any, buffer_callback: Any = None) -> bytes:
    """cloudpickle, protocol 5, keeping code objects' file names."""
    with io.BytesIO() as file:
        _Pickler(file, protocol=5, buffer_callback=buffer_callback).dump(value)
        return file.getvalue()


#: As Ray's FUNCTION_SIZE_WARN_THRESHOLD / FUNCTION_SIZE_ERROR_THRESHOLD: a definition
#: this large (pickled) is logged, one past the limit refused.
FUNCTION_SIZE_WARN_THRESHOLD = 10**7
FUNCTION_SIZE_ERROR_THRESHOLD = 10**8

logger = logging.getLogger(__name__)


def dumps_definition(obj: Any) -> bytes:
    """A function or class for shipping (by value when defined in a notebook or
    script). When it cannot be pickled, the error names the global or closure variable
    it uses that cannot, and what to do: said before anything is submitted. One larger
    than Ray's limit (100 MB; ``NBCLUSTER_FUNCTION_SIZE_ERROR_THRESHOLD``) raises
    ValueError naming the variable that made it large."""
    what = f"{'class' if isinstance(obj, type) else 'function'} {getattr(obj, '__qualname__', obj)!r}"
    try:
        pickled = dumps(obj)
    except Exception as exc:  # noqa: BLE001 - re-raised with the culprit named
        culprit = _unpicklable_reference(obj)
        if culprit is not None:
            name, value, error = culprit
            raise TypeError(
                f"Cannot ship {what} to the cluster: it uses `{name}` ({type(value).__module__}."
                f"{type(value).__qualname__}), which cannot be pickled ({error}). Create it inside the "
                "function instead, or pass something picklable as an argument."
            ) from None
        raise TypeError(f"Cannot ship {what} to the cluster: {exc}") from exc
    _check_size(obj, what, len(pickled))
    return pickled


def _check_size(obj: Any, what: str, size: int) -> None:
    limit = int(os.environ.get(envvars.FUNCTION_SIZE_ERROR_THRESHOLD) or FUNCTION_SIZE_ERROR_THRESHOLD)
    if size <= min(limit, FUNCTION_SIZE_WARN_THRESHOLD):
        return
    largest = max(((len(dumps(v)), n) for n, v in _references(obj) if not isinstance(v, types.ModuleType)),
                  default=None)
    culprit = f"; most of it is `{largest[1]}` ({largest[0] / 2**20:.1f} MiB)" if largest else ""
    if size <= limit:
        logger.warning("the %s is large when pickled (%.1f MiB%s)", what, size / 2**20, culprit)
        return
    raise ValueError(
        f"The {what} is too large ({size / 2**20:.1f} MiB > FUNCTION_SIZE_ERROR_THRESHOLD="
        f"{limit / 2**20:.1f} MiB){culprit}. Check that its definition is not implicitly capturing a "
        "large array or other object in scope. Tip: use nbcluster.put() to put large objects in the "
        "object store and pass the ref as an argument."
    )


def _references(obj: Any) -> Iterator[tuple[str, Any]]:
    """The global and closure variables ``obj`` (a function, or a class's methods) uses."""
    functions = [obj] if callable(obj) and hasattr(obj, "__code__") else []
    if isinstance(obj, type):
        functions = [v for v in vars(obj).values() if hasattr(v, "__code__")]
    for fn in functions:
        code = fn.__code__
        yield from ((n, fn.__globals__[n]) for n in code.co_names if n in fn.__globals__)
        if fn.__closure__:
            yield from ((n, c.cell_contents) for n, c in zip(code.co_freevars, fn.__closure__) if _filled(c))


def _unpicklable_reference(obj: Any) -> tuple[str, Any, Exception] | None:
    """The first global or closure variable that ``obj`` (a function, or a class's
    methods) uses and that cannot be pickled."""
    for name, value in _references(obj):
        if isinstance(value, types.ModuleType):
            continue
        try:
            dumps(value)
        except Exception as error:  # noqa: BLE001
            return name, value, error
    return None


def _filled(cell: Any) -> bool:
    try:
        return cell.cell_contents is not _EMPTY
    except ValueError:  # an empty cell
        return False


_EMPTY = object()


def record_ref(ref: Any) -> None:
    """Called by ``ObjectRef.__reduce__``: note a reference being serialized."""
    refs = getattr(_context, "refs", None)
    if refs is not None:
        refs.append(ref)


class SerializedObject:
    """A value in serialized form: the pickle, its out-of-band buffers, and the
    ObjectRefs nested in it."""

    __slots__ = ("pickled", "buffers", "contained", "flags", "_offsets", "total_size")

    def __init__(self, pickled: bytes, buffers: list[memoryview], contained: list[Any], flags: int = 0) -> None:
        self.pickled = pickled
        self.buffers = buffers
        self.contained = contained
        self.flags = flags
        offsets = []
        pos = _HEAD.size + 8 * len(buffers) + len(pickled)
        for buf in buffers:
            pos = _align(pos)
            offsets.append(pos)
            pos += buf.nbytes
        self._offsets = offsets
        self.total_size = pos

    @property
    def is_error(self) -> bool:
        """The value is an error that ``get`` raises."""
        return bool(self.flags & FLAG_ERROR)

    def _header(self) -> bytes:
        lengths = struct.pack(f"<{len(self.buffers)}Q", *(b.nbytes for b in self.buffers))
        return _HEAD.pack(MAGIC, self.flags, len(self.buffers), len(self.pickled)) + lengths

    def to_bytes(self) -> bytes:
        """One contiguous bytes object (for inline transport)."""
        if not self.buffers:
            return self._header() + self.pickled
        out = bytearray(self.total_size)
        self.write_into(memoryview(out))
        return bytes(out)

    def write_into(self, target: memoryview) -> None:
        """Write the object's bytes into ``target`` (``total_size`` bytes)."""
        header = self._header()
        target[: len(header)] = header
        start = len(header)
        target[start : start + len(self.pickled)] = self.pickled
        for buf, off in zip(self.buffers, self._offsets):
            target[off : off + buf.nbytes] = buf

    def pieces(self, size: int) -> Iterator[tuple[int, memoryview]]:
        """The object's bytes as (offset, piece) of at most ``size`` bytes, in order,
        without joining them (alignment padding is left out: it is never read)."""
        head = memoryview(self._header() + self.pickled)
        for start, data in ((0, head), *zip(self._offsets, (memoryview(b).cast("B") for b in self.buffers))):
            for at in range(0, len(data), size):
                yield start + at, data[at : at + size]

    def write_fd(self, fd: int) -> None:
        """Write into a file (a new shared-memory object) with pwrite: the kernel
        copies each buffer once, with no intermediate bytes object."""
        _pwrite_all(fd, self._header() + self.pickled, 0)
        for buf, off in zip(self.buffers, self._offsets):
            _pwrite_all(fd, buf, off)


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def serialize(value: Any, *, error: bool = False) -> SerializedObject:
    """Serialize ``value``; raises whatever pickling raises (callers translate)."""
    refs: list[Any] = []
    buffers: list[memoryview] = []
    previous = getattr(_context, "refs", None)
    _context.refs = refs
    try:
        if type(value) in _FAST_TYPES:
            pickled = pickle.dumps(value, protocol=5)
        else:
            pickled = dumps(value, buffer_callback=lambda b: buffers.append(b.raw()))
    finally:
        _context.refs = previous
    return SerializedObject(pickled, buffers, refs, FLAG_ERROR if error else 0)


def header_flags(data: Any) -> int:
    """The flags of serialized data; ValueError if it is not a serialized object."""
    magic, flags, _, _ = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise ValueError("not a serialized nbcluster object")
    return flags


def deserialize(data: Any, *, copy_buffers: bool) -> Any:
    """Rebuild a value. With ``copy_buffers=False`` out-of-band buffers are views of
    ``data`` (zero copy; read-only when ``data`` is)."""
    view = memoryview(data)
    magic, _flags, nbuf, plen = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise ValueError("not a serialized nbcluster object")
    pos = _HEAD.size
    lengths = struct.unpack_from(f"<{nbuf}Q", view, pos) if nbuf else ()
    pos += 8 * nbuf
    pickled = view[pos : pos + plen]
    pos += plen
    buffers = []
    for n in lengths:
        pos = _align(pos)
        buf = view[pos : pos + n]
        buffers.append(bytearray(buf) if copy_buffers else buf)
        pos += n
    return pickle.loads(pickled, buffers=buffers)
