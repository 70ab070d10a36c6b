"""The IPython extension: ``%load_ext nbcluster`` registers ``%cluster`` and ``%%remote``
(see ``nbcluster.kernel_ext.magics``) and routes remote output to the cells that caused it."""

from __future__ import annotations

from typing import Any

_MAGICS: dict[int, Any] = {}


def load_ipython_extension(ip: Any) -> None:
    from nbcluster.kernel_ext.magics import ClusterMagics

    if id(ip) in _MAGICS:
        return
    magics = ClusterMagics(ip)
    ip.register_magics(magics)
    _MAGICS[id(ip)] = magics


def unload_ipython_extension(ip: Any) -> None:
    magics = _MAGICS.pop(id(ip), None)
    if magics is not None:
        magics.close()
