"""The ``pip`` and ``uv`` keys of a ``runtime_env``: Python packages installed into a
cached virtual environment on each node (:mod:`.venvs` builds it).

Ray's forms are accepted: a list of requirement strings, the path of a requirements
file (read where the environment enters, on the submitting machine), or a dict
``{"packages": [...], "pip_check": bool, "pip_install_options": [...]}`` (for ``uv``:
``"uv_check"``, ``"uv_pip_install_options"``). The result is a :class:`PipSpec`, a
frozen value that travels inside :class:`~.spec.RuntimeEnv` as is.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["INSTALLERS", "PipSpec", "parse_pip"]

#: The ``runtime_env`` keys that install packages, and the installer each asks for.
INSTALLERS = ("pip", "uv")
_DICT_KEYS = {
    "pip": ("packages", "pip_check", "pip_version", "pip_install_options"),
    "uv": ("packages", "uv_check", "uv_version", "uv_pip_install_options"),
}


@dataclass(frozen=True)
class PipSpec:
    """Packages to install, how (``installer``: ``"pip"`` — uv when it is on the node's
    PATH, pip otherwise — or ``"uv"``, which needs uv), with which extra installer
    options (``--find-links``, ``--index-url``, ...) and whether to check the result
    (``pip check``)."""

    installer: str
    packages: tuple[str, ...]
    check: bool = False
    install_options: tuple[str, ...] = ()

    @property
    def hash(self) -> str:
        """The digest a node's cached environment for this spec is named by."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @classmethod
    def from_dict(cls, installer: str, data: Mapping[str, Any]) -> PipSpec:
        """The value :meth:`to_dict` wrote (checked when it entered; not again)."""
        options = data.get(_DICT_KEYS[installer][3], ())
        return cls(installer, tuple(data["packages"]), bool(data.get(f"{installer}_check", False)), tuple(options))

    def to_dict(self) -> dict[str, Any]:
        """Ray's dict form (what :func:`parse_pip` reads back)."""
        out: dict[str, Any] = {"packages": list(self.packages), f"{self.installer}_check": self.check}
        if self.install_options:
            out[_DICT_KEYS[self.installer][3]] = list(self.install_options)
        return out


def parse_pip(key: str, raw: Any, *, local_paths: bool) -> PipSpec:
    """The ``pip``/``uv`` value of a user's ``runtime_env``, checked; ``TypeError`` or
    ``ValueError`` naming what is wrong. A requirements file path is read only when
    ``local_paths`` (on the machine that submits)."""
    if isinstance(raw, (str, os.PathLike)):
        path = os.fspath(raw)
        if not local_paths:
            raise ValueError(f"runtime_env {key}: {path!r} is a requirements file path; give the list of "
                             "packages (the submitting side reads the file)")
        return PipSpec(key, _read_requirements(key, path))
    if isinstance(raw, (list, tuple)):
        return PipSpec(key, _packages(key, raw))
    if isinstance(raw, Mapping):
        unknown = [k for k in raw if k not in _DICT_KEYS[key]]
        if unknown:
            raise ValueError(f"runtime_env {key} key {unknown[0]!r} is not supported; use "
                             f"{', '.join(_DICT_KEYS[key])}")
        if "packages" not in raw:
            raise ValueError(f"runtime_env {key} dict needs 'packages' (a list of requirements or a "
                             "requirements file path)")
        packages = raw["packages"]
        if isinstance(packages, (str, os.PathLike)):
            packages = parse_pip(key, packages, local_paths=local_paths).packages
        check = raw.get(f"{key}_check", False)
        if not isinstance(check, bool):
            raise TypeError(f"runtime_env {key} {key}_check must be a bool")
        version = raw.get(f"{key}_version")
        if version:
            raise ValueError(f"runtime_env {key} {key}_version is not supported: nbcluster installs with "
                             f"the node's own {key}; leave it out")
        options_key = _DICT_KEYS[key][3]
        options = raw.get(options_key) or []
        if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
            raise TypeError(f"runtime_env {key} {options_key} must be a list of str (such as "
                            "['--find-links', '/wheels', '--no-index'])")
        return PipSpec(key, _packages(key, packages), check, tuple(options))
    raise TypeError(f"runtime_env {key} must be a list of requirements, a requirements file path or a dict "
                    f"with 'packages', not {type(raw).__name__}")


def _packages(key: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)) or not all(isinstance(p, str) and p.strip() for p in raw):
        raise TypeError(f"runtime_env {key} packages must be a list of non-empty requirement strings "
                        "(such as ['requests==2.31', 'numpy'])")
    if not raw:
        raise ValueError(f"runtime_env {key}: the list of packages is empty; leave the key out instead")
    return tuple(p.strip() for p in raw)


def _read_requirements(key: str, path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ValueError(f"runtime_env {key}: cannot read requirements file {path!r}: {exc.strerror}") from None
    packages = [line.split(" #", 1)[0].strip() for line in lines]
    return _packages(key, [p for p in packages if p and not p.startswith("#")])
