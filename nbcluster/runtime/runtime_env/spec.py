"""The runtime environment value: what a job's processes run in.

:class:`RuntimeEnv` holds the keys nbcluster supports of Ray's ``runtime_env`` — a
working directory, extra Python modules, environment variables, packages to install
(``pip``/``uv``, a :class:`~.pip_spec.PipSpec`). It is validated once,
where it enters (``init()``, ``JobSubmissionClient.submit_job``, the jobs API), and
carried as is: local paths become ``gcs://`` package URIs when they are packed
(:meth:`RuntimeEnv.packed`), and a cluster-side value holds URIs only.
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nbcluster.runtime.runtime_env import packages
from nbcluster.runtime.runtime_env.pip_spec import INSTALLERS, PipSpec, parse_pip

#: The ``runtime_env`` keys nbcluster supports (Ray's names).
SUPPORTED_KEYS = ("working_dir", "py_modules", "env_vars", "pip", "uv", "excludes", "config")
#: The keys of ``config`` (Ray's ``RuntimeEnvConfig``), accepted and checked.
CONFIG_KEYS = ("setup_timeout_seconds", "eager_install")
_HINT = "conda and container environments: install them on the cluster's nodes"


@dataclass(frozen=True)
class RuntimeEnv:
    """A validated runtime environment (build it with :meth:`parse`).

    ``working_dir`` and each of ``py_modules`` is a local path (on the machine that
    submits, before :meth:`packed`) or a ``gcs://`` package URI; ``env_vars`` are set in
    every process of the job; ``pip`` is the packages to install (from the ``pip`` or the
    ``uv`` key: its ``installer`` says which) into a cached virtualenv. ``excludes``
    (fnmatch patterns) are left out when local paths are zipped; ``config`` is Ray's
    ``RuntimeEnvConfig`` (accepted, checked)."""

    working_dir: str | None = None
    py_modules: tuple[str, ...] = ()
    env_vars: Mapping[str, str] = field(default_factory=lambda: types.MappingProxyType({}))
    excludes: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))
    pip: PipSpec | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | RuntimeEnv | None, *, local_paths: bool = True) -> RuntimeEnv:
        """Validate a user's ``runtime_env`` dict. ``local_paths``: entries may be local
        paths (a directory for ``working_dir``; a package directory, a ``.py`` file or a
        module object for ``py_modules``) besides ``gcs://`` URIs; otherwise URIs only
        (the cluster's side). Raises ``TypeError``/``ValueError`` naming the key."""
        if isinstance(raw, RuntimeEnv):
            return raw
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise TypeError(f"runtime_env must be a dict, not {type(raw).__name__}")
        unknown = [key for key in raw if key not in SUPPORTED_KEYS]
        if unknown:
            raise ValueError(f"runtime_env key {unknown[0]!r} is not supported; nbcluster supports "
                             f"{', '.join(SUPPORTED_KEYS)} ({_HINT})")
        env_vars = raw.get("env_vars") or {}
        if not isinstance(env_vars, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
            raise TypeError("runtime_env env_vars must be a dict of str to str")
        modules = raw.get("py_modules") or []
        if isinstance(modules, (str, bytes, os.PathLike)) or not isinstance(modules, (list, tuple)):
            raise TypeError("runtime_env py_modules must be a list of paths, modules or gcs:// URIs")
        excludes = raw.get("excludes") or []
        if not isinstance(excludes, (list, tuple)) or not all(isinstance(e, str) for e in excludes):
            raise TypeError("runtime_env excludes must be a list of str (fnmatch patterns such as '*.csv')")
        installers = [key for key in INSTALLERS if raw.get(key) is not None]
        if len(installers) > 1:
            raise ValueError("runtime_env: give either 'pip' or 'uv', not both (the same packages, installed "
                             "by pip or by uv)")
        pip = parse_pip(installers[0], raw[installers[0]], local_paths=local_paths) if installers else None
        working_dir = raw.get("working_dir")
        return cls(
            working_dir=_entry(working_dir, "working_dir", local_paths) if working_dir is not None else None,
            py_modules=tuple(_entry(m, "py_modules", local_paths) for m in modules),
            env_vars=types.MappingProxyType(dict(env_vars)),
            excludes=tuple(excludes),
            config=types.MappingProxyType(_config(raw.get("config"))),
            pip=pip,
        )

    def __bool__(self) -> bool:
        return bool(self.working_dir or self.py_modules or self.env_vars or self.pip)

    @property
    def uris(self) -> list[str]:
        """The package URIs it names (working_dir first)."""
        entries = [self.working_dir, *self.py_modules] if self.working_dir else list(self.py_modules)
        return [e for e in entries if is_uri(e)]

    def packed(self, store: Callable[[str, bytes], None]) -> RuntimeEnv:
        """This environment with each local path zipped into a package: ``store(uri,
        data)`` is called for each (the caller uploads it its way) and the URI takes the
        path's place. Zipping the same content gives the same URI."""

        def pack(entry: str, include_parent: bool) -> str:
            if is_uri(entry):
                return entry
            data = packages.zip_directory(entry, include_parent=include_parent,
                                          excludes=packages.DEFAULT_EXCLUDES + self.excludes)
            uri = packages.package_uri(data)
            store(uri, data)
            return uri

        return replace(
            self,
            working_dir=pack(self.working_dir, False) if self.working_dir else None,
            py_modules=tuple(pack(m, True) for m in self.py_modules),
        )

    def merged(self, override: RuntimeEnv) -> RuntimeEnv:
        """``override`` on top of this environment (a job's driver's ``init(runtime_env=)``
        over the job's): its working_dir wins, py_modules add up, env_vars merge."""
        return RuntimeEnv(
            working_dir=override.working_dir or self.working_dir,
            py_modules=self.py_modules + override.py_modules,
            env_vars=types.MappingProxyType({**self.env_vars, **override.env_vars}),
            pip=override.pip or self.pip,
        )

    def override(self, child: RuntimeEnv) -> RuntimeEnv:
        """A task's or actor's ``child`` environment over its job's (this one), as Ray:
        each key the child gives replaces the job's, except ``env_vars``, which merge
        (the child's win)."""
        return RuntimeEnv(
            working_dir=child.working_dir or self.working_dir,
            py_modules=child.py_modules or self.py_modules,
            env_vars=types.MappingProxyType({**self.env_vars, **child.env_vars}),
            excludes=child.excludes or self.excludes,
            config=child.config or self.config,
            pip=child.pip or self.pip,
        )

    @property
    def hash(self) -> str:
        """A short digest of the environment ("" for none): workers are reused only
        within one environment."""
        if not self:
            return ""
        key = {"env_vars": dict(self.env_vars), "working_dir": self.working_dir or "", "py_modules": list(self.py_modules),
               "pip": self.pip.hash if self.pip else ""}
        return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text: how job records and a job's processes carry it."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> RuntimeEnv:
        """The value :meth:`to_json` wrote (validated when it entered; not again)."""
        data = json.loads(text) if text else {}
        installer = next((key for key in INSTALLERS if key in data), None)
        return cls(
            working_dir=data.get("working_dir") or None,
            py_modules=tuple(data.get("py_modules", ())),
            env_vars=types.MappingProxyType(dict(data.get("env_vars", {}))),
            excludes=tuple(data.get("excludes", ())),
            config=types.MappingProxyType(dict(data.get("config", {}))),
            pip=PipSpec.from_dict(installer, data[installer]) if installer else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (keys with a value only), as the jobs API and job records hold it."""
        out: dict[str, Any] = {}
        if self.working_dir:
            out["working_dir"] = self.working_dir
        if self.py_modules:
            out["py_modules"] = list(self.py_modules)
        if self.env_vars:
            out["env_vars"] = dict(self.env_vars)
        if self.pip:
            out[self.pip.installer] = self.pip.to_dict()
        if self.excludes:
            out["excludes"] = list(self.excludes)
        if self.config:
            out["config"] = dict(self.config)
        return out


def is_uri(entry: str) -> bool:
    """Whether a ``working_dir``/``py_modules`` entry is a package URI (not a local path)."""
    return entry.startswith(f"{packages.PROTOCOL}://")


def _entry(value: Any, key: str, local_paths: bool) -> str:
    """One ``working_dir``/``py_modules`` entry, checked: a ``gcs://`` URI as is, or (when
    ``local_paths``) a local path that exists as the key needs."""
    if isinstance(value, types.ModuleType) and key == "py_modules" and local_paths:
        file = getattr(value, "__file__", None)
        if not file:
            raise ValueError(f"runtime_env py_modules: module {value.__name__!r} has no file to upload")
        return os.path.dirname(file) if os.path.basename(file) == "__init__.py" else file
    if not isinstance(value, (str, os.PathLike)):
        kinds = "paths or gcs:// URIs" if local_paths else "gcs:// URIs"
        raise TypeError(f"runtime_env {key} entries must be {kinds}, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"runtime_env {key} entries must be text paths, got bytes")
    if "://" in text:
        if not is_uri(text):
            raise ValueError(f"runtime_env {key}: {text!r} is not supported; give a local path or a gcs:// "
                             "URI from an earlier upload")
        packages.parse_uri(text)
        return text
    if not local_paths:
        raise ValueError(f"runtime_env {key}: expected a gcs:// URI, got {text!r} (the client uploads local "
                         "directories and passes their gcs:// URI)")
    if key == "working_dir" and not os.path.isdir(text):
        raise ValueError(f"runtime_env working_dir {text!r} is not a directory")
    if key == "py_modules" and not (os.path.isdir(text) or (os.path.isfile(text) and text.endswith(".py"))):
        raise ValueError(f"runtime_env py_modules entry {text!r} is not a package directory or a .py file")
    return text


def _config(raw: Any) -> dict[str, Any]:
    """Ray's ``RuntimeEnvConfig`` keys, checked: ``setup_timeout_seconds`` (an int > 0,
    or -1: no timeout) and ``eager_install`` (a bool)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TypeError(f"runtime_env config must be a dict, not {type(raw).__name__}")
    unknown = [key for key in raw if key not in CONFIG_KEYS]
    if unknown:
        raise ValueError(f"runtime_env config key {unknown[0]!r} is not supported; use {', '.join(CONFIG_KEYS)}")
    timeout = raw.get("setup_timeout_seconds", 600)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not (timeout > 0 or timeout == -1):
        raise ValueError(f"runtime_env config setup_timeout_seconds must be an int > 0 or -1, got {timeout!r}")
    if not isinstance(raw.get("eager_install", True), bool):
        raise TypeError("runtime_env config eager_install must be a bool")
    return dict(raw)
