"""The autoscaler's cluster config, in the shape of Ray's cluster YAML.

:func:`load_config` reads a YAML file (or an already-parsed dict), checks every key and
value, and returns a frozen :class:`AutoscalingConfig`. A bad file raises
:class:`~nbcluster.exceptions.AutoscalerConfigError` naming the file, the line, the dotted
key, what is wrong and how to fix it. Ray keys with no meaning here (``docker``,
``file_mounts``, ...) are accepted and listed in ``ignored_keys``, so Ray users'
files load unchanged. ``auth`` and the setup commands (``setup_commands``,
``head_setup_commands``, ``worker_setup_commands``) set up machines over SSH: with
``provider: type: ssh`` they are checked and kept in :class:`ProviderConfig`; with any
other provider they are ignored too.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml

from nbcluster.exceptions import AutoscalerConfigError

__all__ = ["AutoscalingConfig", "NodeTypeConfig", "ProviderConfig", "load_config"]

_TOP_KEYS = tuple(
    "available_node_types cluster_name head_node_type idle_timeout_minutes max_workers provider "
    "tls upscaling_speed".split()
)
#: Ray cluster-YAML keys accepted and ignored (they set up machines; nbcluster does not).
_TOP_RAY_ONLY = tuple(
    "auth docker file_mounts cluster_synced_files file_mounts_sync_continuously rsync_exclude "
    "rsync_filter initialization_commands setup_commands head_setup_commands worker_setup_commands "
    "head_start_ray_commands worker_start_ray_commands min_workers".split()
)
#: Top-level keys the ssh node provider reads (ignored with other providers).
_SSH_TOP = ("auth", "setup_commands", "head_setup_commands", "worker_setup_commands")
_TYPE_KEYS = ("max_workers", "min_workers", "node_config", "resources")
_TYPE_RAY_ONLY = ("worker_setup_commands", "docker", "labels")

_Path = tuple[str, ...]  # a dotted key, split
_Names = tuple[str, ...]
_MISSING: Any = object()


@dataclass(frozen=True)
class NodeTypeConfig:
    """One entry of ``available_node_types``: a kind of node the autoscaler can start."""

    #: The key under ``available_node_types``.
    name: str
    #: What one node of this type offers the scheduler, e.g. ``{"CPU": 4.0, "GPU": 1.0}``.
    resources: dict[str, float]
    #: Nodes of this type kept running even when idle.
    min_workers: int = 0
    #: At most this many nodes of this type (the cluster's ``max_workers`` still applies).
    max_workers: int = 0
    #: Opaque here; handed to the node provider when it launches a node of this type.
    node_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderConfig:
    """The ``provider:`` section: which node provider starts nodes, and its options."""

    type: str = "local"
    #: Every other key of ``provider:`` (e.g. ``module`` for type ``external``).
    options: dict[str, Any] = field(default_factory=dict)
    #: Type ``ssh`` only: the top-level ``auth:`` (``ssh_user``, ``ssh_private_key``, ...).
    auth: dict[str, Any] = field(default_factory=dict)
    #: Type ``ssh`` only: shell commands run on every node (then on the head, on
    #: workers) before its node manager starts.
    setup_commands: tuple[str, ...] = ()
    head_setup_commands: tuple[str, ...] = ()
    worker_setup_commands: tuple[str, ...] = ()

    def top_level(self) -> dict[str, Any]:
        """The top-level YAML keys this section was read from besides ``provider:``."""
        out: dict[str, Any] = {"auth": copy.deepcopy(self.auth)} if self.auth else {}
        for key in _SSH_TOP[1:]:
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        return out


@dataclass(frozen=True)
class AutoscalingConfig:
    """The whole cluster config. Build it with :func:`load_config`, which checks it.

    ``source`` and ``ignored_keys`` describe where the config came from and are not part
    of equality: two configs with the same settings are equal whatever file they came from.
    """

    cluster_name: str = "default"
    #: Worker nodes (all types, the head excluded) the autoscaler may run at once.
    max_workers: int = 2
    #: As in Ray: nodes pending launch may number up to this multiple of the running nodes.
    upscaling_speed: float = 1.0
    #: A worker node idle this long is terminated (fractions allowed).
    idle_timeout_minutes: float = 5.0
    head_node_type: str | None = None
    available_node_types: dict[str, NodeTypeConfig] = field(default_factory=dict)
    provider: ProviderConfig = field(default_factory=ProviderConfig)
    #: TLS between machines (``tls.py``): true/false; None (not given): on when the head
    #: listens beyond loopback.
    tls: bool | None = None
    #: The file path, or ``"<dict>"``.
    source: str = field(default="<dict>", compare=False)
    #: Ray keys accepted but not used here, as dotted paths (for a log line).
    ignored_keys: tuple[str, ...] = field(default=(), compare=False)

    @property
    def idle_timeout_s(self) -> float:
        """``idle_timeout_minutes`` in seconds."""
        return self.idle_timeout_minutes * 60.0

    @property
    def worker_types(self) -> dict[str, NodeTypeConfig]:
        """The node types that may be launched as workers (``max_workers > 0``)."""
        return {n: t for n, t in self.available_node_types.items() if t.max_workers > 0}

    def head_resources(self) -> dict[str, float] | None:
        """The resources of ``head_node_type``, or ``None`` when there is none."""
        head = self.available_node_types.get(self.head_node_type or "")
        return None if head is None else dict(head.resources)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict in the YAML shape; ``load_config(c.to_dict()) == c``."""
        return {
            "cluster_name": self.cluster_name,
            "max_workers": self.max_workers,
            "upscaling_speed": self.upscaling_speed,
            "idle_timeout_minutes": self.idle_timeout_minutes,
            "head_node_type": self.head_node_type,
            "available_node_types": {
                name: {
                    "resources": dict(t.resources),
                    "min_workers": t.min_workers,
                    "max_workers": t.max_workers,
                    "node_config": copy.deepcopy(t.node_config),
                }
                for name, t in self.available_node_types.items()
            },
            "provider": {**copy.deepcopy(self.provider.options), "type": self.provider.type},
            **self.provider.top_level(),
            **({"tls": self.tls} if self.tls is not None else {}),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` plus ``source`` and ``ignored_keys``, as JSON (for REST)."""
        return json.dumps({**self.to_dict(), "source": self.source, "ignored_keys": list(self.ignored_keys)})

    @classmethod
    def from_json(cls, s: str) -> AutoscalingConfig:
        """The config :meth:`to_json` wrote, checked as :func:`load_config` checks a dict."""
        try:
            data = json.loads(s)
        except json.JSONDecodeError as exc:
            raise _error("<json>", "", exc.lineno, f"invalid JSON ({exc.msg})",
                         "send the output of AutoscalingConfig.to_json()") from exc
        meta: dict[str, Any] = {}
        if isinstance(data, dict):
            data = dict(data)
            meta = {k: data.pop(k) for k in ("source", "ignored_keys") if k in data}
        config = _Checker("<json>", {}).config(data)
        source, ignored = meta.get("source", "<dict>"), meta.get("ignored_keys", list(config.ignored_keys))
        ok = isinstance(ignored, list) and all(isinstance(k, str) for k in ignored)
        if not ok or not isinstance(source, str):
            raise _error("<json>", "source" if not isinstance(source, str) else "ignored_keys", None,
                         "must be a string (source) or a list of strings (ignored_keys)",
                         "send the output of AutoscalingConfig.to_json()")
        return dataclasses.replace(config, source=source, ignored_keys=tuple(ignored))


def load_config(source: str | os.PathLike[str] | dict[str, Any]) -> AutoscalingConfig:
    """Load and check a cluster config from a YAML file path or an already-parsed dict.

    Raises :class:`~nbcluster.exceptions.AutoscalerConfigError` for a missing or
    unreadable file, bad YAML, an unknown key, or a bad value.
    """
    if not isinstance(source, (str, os.PathLike)):
        return _Checker("<dict>", {}).config(source)
    path = os.fsdecode(source)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise _error(path, "", None, "file not found", "check the path of the cluster config") from None
    except OSError as exc:
        raise _error(path, "", None, f"cannot read the file ({exc.strerror or exc})",
                     "check the path and its permissions") from exc
    data, lines = _parse_yaml(text, path)
    return _Checker(path, lines).config(data)


def _error(source: str, key: str, line: int | None, what: str, fix: str) -> AutoscalerConfigError:
    where = source if line is None else f"{source} line {line}"
    subject = f"{key}: " if key else ""
    return AutoscalerConfigError(f"{where}: {subject}{what}; {fix}", key=key, line=line, source=source)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({type(value).__name__})"


def _parse_yaml(text: bytes, source: str) -> tuple[Any, dict[_Path, tuple[int, int]]]:
    """``yaml.safe_load`` that also returns the 1-based (key line, value line) of every key."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise _error(source, "", None if mark is None else mark.line + 1, f"invalid YAML ({problem})",
                     "fix the YAML syntax there (indentation, quoting, a missing ':')") from exc
    lines: dict[_Path, tuple[int, int]] = {}

    def record(node: yaml.Node, path: _Path) -> None:
        if isinstance(node, yaml.MappingNode):  # merge keys were flattened by the constructor
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    lines[path + (key.value,)] = (key.start_mark.line + 1, value.start_mark.line + 1)
                    record(value, path + (key.value,))

    if node is not None:
        record(node, ())
    return data, lines


class _Checker:
    """Checks parsed config data and builds the dataclasses; raises at the first error."""

    def __init__(self, source: str, lines: dict[_Path, tuple[int, int]]) -> None:
        self.source = source
        self.lines = lines
        self.ignored: list[str] = []

    def line(self, path: _Path, at_value: bool = False) -> int | None:
        """The line of ``path``'s key (or value), else of its nearest ancestor's key."""
        for i in range(len(path), 0, -1):
            found = self.lines.get(path[:i])
            if found is not None:
                return found[1] if at_value and i == len(path) else found[0]
        return None

    def fail(self, path: _Path, what: str, fix: str, at_value: bool = False) -> NoReturn:
        raise _error(self.source, ".".join(path), self.line(path, at_value), what, fix)

    def mapping(self, value: Any, path: _Path, example: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {_show(value)}", f"write e.g. {path[-1]}: {example}",
                      at_value=True)
        for key in value:
            if not isinstance(key, str):
                self.fail(path + (str(key),), f"keys must be strings, got {_show(key)}", "quote the key")
        return value

    def keys(self, data: dict[str, Any], path: _Path, valid: _Names, ray_only: _Names) -> None:
        for key in data:
            if key in valid:
                continue
            if key in ray_only:
                self.ignored.append(".".join(path + (key,)))
                continue
            listing = ", ".join(sorted(valid))
            close = difflib.get_close_matches(key, [*valid, *ray_only], n=1)
            if not close:
                self.fail(path + (key,), "unknown key", f"remove it; valid keys: {listing}")
            ray = " (a Ray key, accepted and ignored here)" if close[0] in ray_only else ""
            self.fail(path + (key,), "unknown key", f"did you mean {close[0]!r}{ray}? Valid keys: {listing}")

    def whole(self, value: Any, path: _Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(path, f"must be a whole number >= 0, got {_show(value)}",
                      f"write e.g. {path[-1]}: 2", at_value=True)
        return value

    def number(self, value: Any, path: _Path, minimum: float, strict: bool, example: str) -> float:
        is_num = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not is_num or value < minimum or (strict and value == minimum):
            bound = f"{'>' if strict else '>='} {minimum:g}"
            self.fail(path, f"must be a number {bound}, got {_show(value)}",
                      f"write e.g. {path[-1]}: {example}", at_value=True)
        return float(value)

    def config(self, data: Any) -> AutoscalingConfig:
        if not isinstance(data, dict):
            raise _error(self.source, "", None, f"the top level must be a mapping, got {_show(data)}",
                         "write keys such as cluster_name, max_workers and available_node_types")
        self.mapping(data, (), "")
        self.keys(data, (), _TOP_KEYS, _TOP_RAY_ONLY)
        d = AutoscalingConfig()
        name = data.get("cluster_name", d.cluster_name)
        if not isinstance(name, str):
            self.fail(("cluster_name",), f"must be a string, got {_show(name)}",
                      "write e.g. cluster_name: demo", at_value=True)
        max_workers = self.whole(data.get("max_workers", d.max_workers), ("max_workers",))
        speed = data.get("upscaling_speed", d.upscaling_speed)
        speed = self.number(speed, ("upscaling_speed",), 0, True, "1.0")
        idle = data.get("idle_timeout_minutes", d.idle_timeout_minutes)
        idle = self.number(idle, ("idle_timeout_minutes",), 0, False, "5")
        use_tls = data.get("tls")
        if use_tls is not None and not isinstance(use_tls, bool):
            self.fail(("tls",), f"must be true or false, got {_show(use_tls)}",
                      "write tls: true (TLS between machines) or leave it out", at_value=True)
        tpath = ("available_node_types",)
        example = "{cpu_worker: {resources: {CPU: 1}, max_workers: 2}}"
        if "available_node_types" not in data:
            self.fail(tpath, "required key missing", f"add available_node_types: {example}")
        raw_types = self.mapping(data["available_node_types"], tpath, example)
        if not raw_types:
            self.fail(tpath, "must name at least one node type",
                      f"write e.g. available_node_types: {example}", at_value=True)
        head = data.get("head_node_type")
        if head is not None and (not isinstance(head, str) or head not in raw_types):
            shown = repr(head) if isinstance(head, str) else _show(head)
            self.fail(("head_node_type",), f"{shown} is not a node type",
                      f"use one of the names under available_node_types: {', '.join(raw_types)}",
                      at_value=True)
        types = {n: self.node_type(n, spec, head, max_workers) for n, spec in raw_types.items()}
        mins = {n: t.min_workers for n, t in types.items() if n != head and t.min_workers}
        if sum(mins.values()) > max_workers:
            at = ("max_workers",) if "max_workers" in data else tpath
            parts = ", ".join(f"{n}={m}" for n, m in mins.items())
            default = "" if "max_workers" in data else " (the default)"
            raise _error(self.source, "max_workers", self.line(at, at_value=True),
                         f"the worker types' min_workers add up to {sum(mins.values())} ({parts}), "
                         f"more than max_workers {max_workers}{default}",
                         f"set max_workers to at least {sum(mins.values())} or lower min_workers")
        return AutoscalingConfig(
            cluster_name=name, max_workers=max_workers, upscaling_speed=speed, idle_timeout_minutes=idle,
            head_node_type=head, available_node_types=types,
            provider=self.provider(data.get("provider", _MISSING), data), tls=use_tls,
            source=self.source, ignored_keys=tuple(self.ignored),
        )

    def node_type(self, name: str, spec: Any, head: str | None, cluster_max: int) -> NodeTypeConfig:
        path = ("available_node_types", name)
        self.mapping(spec, path, "{resources: {CPU: 1}, max_workers: 2}")
        self.keys(spec, path, _TYPE_KEYS, _TYPE_RAY_ONLY)
        rpath = path + ("resources",)
        if "resources" not in spec:
            self.fail(rpath, "required key missing", "add e.g. resources: {CPU: 1} (resources: {} for none)")
        raw = self.mapping(spec["resources"], rpath, "{CPU: 1}")
        resources = {k: self.number(v, rpath + (k,), 0, False, "1") for k, v in raw.items()}
        default_max = 0 if name == head else cluster_max
        min_workers = self.whole(spec.get("min_workers", 0), path + ("min_workers",))
        max_workers = self.whole(spec.get("max_workers", default_max), path + ("max_workers",))
        if min_workers > max_workers:
            if "max_workers" in spec:
                of = f"max_workers {max_workers}"
            else:
                why = "for the head node type" if name == head else "(the cluster's max_workers)"
                of = f"max_workers, which defaults to {max_workers} {why}"
            self.fail(path + ("min_workers",), f"min_workers {min_workers} is greater than {of}",
                      f"lower min_workers or set max_workers to at least {min_workers}", at_value=True)
        node_config = spec.get("node_config")
        if node_config is not None:
            node_config = self.mapping(node_config, path + ("node_config",), "{instance_type: m5.large}")
        return NodeTypeConfig(name, resources, min_workers, max_workers, copy.deepcopy(node_config or {}))

    def provider(self, raw: Any, top: dict[str, Any]) -> ProviderConfig:
        if raw is _MISSING:
            return ProviderConfig()
        path = ("provider",)
        self.mapping(raw, path, "{type: local}")
        if "type" not in raw:
            self.fail(path + ("type",), "required key missing", "add type: local (or another node provider)")
        ptype = raw["type"]
        if not isinstance(ptype, str) or not ptype:
            self.fail(path + ("type",), f"must be a non-empty string, got {_show(ptype)}",
                      "write e.g. type: local", at_value=True)
        options = copy.deepcopy({k: v for k, v in raw.items() if k != "type"})
        if ptype != "ssh":
            return ProviderConfig(ptype, options)
        self.ignored[:] = [k for k in self.ignored if k not in _SSH_TOP]  # the ssh provider reads them
        auth = top.get("auth", {})
        auth = copy.deepcopy(self.mapping({} if auth is None else auth, ("auth",), "{ssh_user: ubuntu}"))
        commands = {key: self.commands(top.get(key), (key,)) for key in _SSH_TOP[1:]}
        return ProviderConfig(ptype, options, auth, **commands)

    def commands(self, value: Any, path: _Path) -> tuple[str, ...]:
        """A list of shell commands (None: none)."""
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            self.fail(path, f"must be a list of shell commands (strings), got {_show(value)}",
                      f"write e.g. {path[-1]}: [pip install numpy]", at_value=True)
        return tuple(value)
