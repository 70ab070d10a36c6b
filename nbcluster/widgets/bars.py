"""``ProgressBars``: the bars that tasks and actors report (``nbcluster.util.tqdm``),
merged into one view.

One row per bar — its label (the bar's ``desc``, and the function or actor class that
reports it), a progress bar, and ``n/total`` with the rate — ordered by the bars'
``position`` and then by when they appeared. A closed bar stays, green (or goes, when
made with ``leave=False``). The kernel extension shows one under each cell whose tasks
report bars; where no widget frontend runs it is a text (or static HTML) list of the bars.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets

from nbcluster.driver import ProgressState

from ._display import StaticReprMixin, bar_html, esc

__all__ = ["ProgressBars"]


class _Row:
    def __init__(self, state: ProgressState) -> None:
        self.label = widgets.HTML(layout=widgets.Layout(width="16em"))
        self.bar = widgets.FloatProgress(min=0.0, max=1.0, layout=widgets.Layout(width="40%"))
        self.text = widgets.HTML()
        self.box = widgets.HBox([self.label, self.bar, self.text])
        self.box.add_class("nbc-bar")
        self.state = state

    def show(self, state: ProgressState) -> None:
        self.state = state
        who = f'<span style="color:#888">({esc(state.source)} pid={state.pid})</span>'
        self.label.value = f"{esc(state.desc)} {who}" if state.desc else who
        fraction = state.fraction
        self.bar.value = 1.0 if fraction is None and state.closed else (fraction or 0.0)
        self.bar.bar_style = "success" if state.closed else ("info" if fraction is None else "")
        self.text.value = esc(state.counts())


class ProgressBars(StaticReprMixin, widgets.VBox):
    """Progress bars from many tasks and actors in one view (see the module docstring).
    ``update(state)`` from any thread; ``states`` (plain data, for tests) lists the bars
    shown, in order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("nbc-bars")
        self._rows: dict[tuple, _Row] = {}
        self._lock = threading.Lock()

    @property
    def states(self) -> list[ProgressState]:
        """The bars shown, in order."""
        with self._lock:
            return [row.state for row in self._ordered()]

    @property
    def done(self) -> bool:
        """Whether every bar shown is closed."""
        return all(state.closed for state in self.states)

    def update(self, state: ProgressState) -> None:
        """Show a bar's new state (a new bar gets a row; a dropped one loses its row)."""
        with self._lock, self.hold_sync():
            row = self._rows.get(state.key)
            if state.drop:
                if row is not None:
                    del self._rows[state.key]
                    self.children = [r.box for r in self._ordered()]
                return
            if row is None:
                row = self._rows[state.key] = _Row(state)
                row.show(state)
                self.children = [r.box for r in self._ordered()]
            else:
                row.show(state)

    def _ordered(self) -> list[_Row]:
        return sorted(self._rows.values(), key=lambda r: r.state.position)  # stable: then by arrival

    def _text_summary(self) -> str:
        return "\n".join(f"({s.source} pid={s.pid}) {s.text()}" for s in self.states) or "no progress bars"

    def _static_html(self) -> str:
        rows = "".join(
            f"<tr><td>{esc(s.desc)}</td><td>{bar_html(s.fraction or (1.0 if s.closed else 0.0), 1.0)}</td>"
            f"<td>{esc(s.counts())}</td></tr>"
            for s in self.states
        )
        return f'<table class="nbc-bars">{rows}</table>'
