"""The IPython extension: ``%load_ext nbcluster`` registers ``%cluster`` and ``%%remote``
(see ``nbcluster.kernel_ext.magics``) and routes remote output to the cells that caused it."""

from __future__ import annotations

import re
from typing import Any

_MAGICS: dict[int, Any] = {}


_HELP = re.compile(r"^(\s*)%cluster\s+([a-z][a-z-]*)\s*\?\s*$")


def _subcommand_help(lines: list[str]) -> list[str]:
    """``%cluster connect?`` asks for a subcommand's help: IPython's own ``?`` would look
    for an object called "%cluster connect"."""
    return [_HELP.sub(r"\1%cluster help \2", line) for line in lines]


def load_ipython_extension(ip: Any) -> None:
    """Register the ``%cluster`` and ``%%remote`` magics in the shell ``ip`` (once per
    shell)."""
    from nbcluster.kernel_ext.magics import ClusterMagics

    if id(ip) in _MAGICS:
        return
    magics = ClusterMagics(ip)
    ip.register_magics(magics)
    ip.input_transformers_cleanup.append(_subcommand_help)
    _MAGICS[id(ip)] = magics


def unload_ipython_extension(ip: Any) -> None:
    """Remove what :func:`load_ipython_extension` added to ``ip``."""
    magics = _MAGICS.pop(id(ip), None)
    if magics is not None:
        magics.close()
    if _subcommand_help in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(_subcommand_help)
