"""Reading executed notebooks in tests."""

from __future__ import annotations

import nbformat


def cell_text(cell: nbformat.NotebookNode) -> str:
    """A code cell's outputs as text: streams, the plain text of results and displays,
    and errors as ``ERROR name: value``."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"ERROR {out.ename}: {out.evalue}")
    return "".join(parts)
