"""The one place that chooses what a widget shows where no widget frontend runs.

A widget's mime bundle carries the live view (for JupyterLab/Notebook with the
ipywidgets manager), a static HTML table (for nbconvert, GitHub, a frontend without the
widget manager) and a short text summary (terminal IPython, logs): never ``VBox(...)``.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["StaticReprMixin", "bar_html", "esc", "fmt_bytes", "fmt_duration"]

_BAR = (
    '<div style="display:inline-block;width:80px;height:10px;background:#e0e0e0;'
    'vertical-align:middle;margin-right:4px"><div style="width:{pct:.0f}%;height:10px;'
    'background:{color}"></div></div>'
)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def bar_html(used: float, total: float, label: str = "") -> str:
    """A small bar of ``used`` out of ``total`` with its label."""
    pct = 0.0 if total <= 0 else max(0.0, min(100.0, 100.0 * used / total))
    color = "#d9534f" if pct >= 90 else "#4a90d9"
    return _BAR.format(pct=pct, color=color) + f"<span>{esc(label)}</span>"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class StaticReprMixin:
    """For ipywidgets containers: ``repr()`` is the text summary; the mime bundle adds
    ``text/html`` (static) to the widget view. Subclasses define ``_text_summary()``
    and ``_static_html()``."""

    def _text_summary(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _static_html(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return self._text_summary()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        if getattr(self, "comm", None) is not None:  # open: the live view too
            bundle.update(super()._repr_mimebundle_(**kwargs) or {})  # type: ignore[misc]
        bundle["text/plain"] = self._text_summary()
        bundle["text/html"] = self._static_html()
        return bundle

    def _keep_static_repr(self) -> None:
        """After ``Widget.close()`` (which blanks ``_repr_mimebundle_``): keep the
        static HTML and text, so a closed widget still shows its last state."""
        self.__dict__.pop("_repr_mimebundle_", None)
