"""The engine of the ``%%remote`` cell magic: run one notebook cell as one nbcluster task.

``run_remote_cell(shell, line, cell)`` (registered by ``kernel_ext.magics``) parses the
flags (:func:`remote_cell_usage` holds the parser and the help text), then ships the
names the cell reads from the user namespace before assigning them **by value**: each
is cloudpickled first, so an unshippable one (open file, lock, connection) is a
``UsageError`` naming it and nothing is submitted. Modules go by name and are imported
again on the worker; names the kernel lacks are left to the worker (builtin or NameError).

The worker runs the cell as IPython would (statements, then a final expression's value;
top-level ``await`` works). ``display(...)`` output is captured as mime bundles and
published again in the cell, in order; ``print`` output takes the cluster's remote-output
path. The driver waits (the stop button cancels the task) and returns the value, shown
as ``Out[n]`` unless the cell ends with ``;``. ``-o NAME`` does not wait: ``NAME`` holds
the ObjectRef of the value, and the cell's displays are dropped.

The cell runs elsewhere, on copies: **names it assigns are not written back to the user
namespace**, and changes to shipped objects stay on the worker; return what you need as
the last expression. Notebook functions carry the globals they use as they were when the
cell started. A cell is not re-run when its worker dies unless ``--retries`` says so.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import hashlib
import io
import json
import keyword
import symtable
import tokenize
import types
from typing import Any

import cloudpickle
from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

import nbcluster

__all__ = ["free_names", "remote_cell_usage", "run_remote_cell"]

_DISPLAYS_ATTR = "_nbcluster_cell_displays"


@magic_arguments("%remote")
@argument("--num-cpus", type=float, metavar="N", help="CPUs the cell needs (default 1).")
@argument("--num-gpus", type=float, metavar="N", help="GPUs the cell needs (default 0).")
@argument("--resources", metavar="JSON", help='Custom resources as a JSON object, e.g. \'{"accel": 1}\'.')
@argument("--retries", type=int, default=0, metavar="K",
          help="Re-run the cell up to K times if its worker dies (default 0; -1: no limit).")
@argument("-o", dest="output", metavar="NAME",
          help="Do not wait: store the ObjectRef of the cell's value in NAME and return at once.")
def remote_cell_usage(line: str) -> None:
    """Run this cell as one task on the connected nbcluster cluster.

    The variables, functions and modules the cell uses are shipped by value; names it
    assigns stay on the worker. The value of the last expression comes back as the
    cell's output, and display() output inside the cell is shown here.
    """


def run_remote_cell(shell: Any, line: str, cell: str) -> Any:
    """Run ``cell`` as an nbcluster task; return its last expression's value (None with
    ``-o NAME``, a trailing ``;`` or a final statement)."""
    args = parse_argstring(remote_cell_usage, line)
    options = _task_options(args)
    if args.output is not None and (not args.output.isidentifier() or keyword.iskeyword(args.output)):
        raise UsageError(f"-o NAME must be a Python identifier, got {args.output!r}")
    if not nbcluster.is_initialized():
        raise UsageError("%%remote: not connected; run %cluster connect or %cluster start first")
    if not cell.strip():
        return None
    filename = f"<remote-cell-{hashlib.sha1(cell.encode()).hexdigest()[:12]}>"
    tree = ast.parse(cell, filename)  # a SyntaxError shows here, before anything is sent
    compile(tree, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    values, modules = _ship(shell.user_ns, free_names(cell, tree))
    value_ref, displays_ref = _runner().options(**options).remote(cell, filename, values, modules)
    if args.output is not None:
        shell.user_ns[args.output] = value_ref
        return None
    try:
        value, displays = nbcluster.get([value_ref, displays_ref])
    except KeyboardInterrupt:  # the stop button: stop the cell on the cluster too
        with contextlib.suppress(Exception):
            nbcluster.cancel(value_ref)
        raise
    except nbcluster.exceptions.TaskError as exc:  # the cell's own error
        _publish(getattr(exc, _DISPLAYS_ATTR, None) or getattr(getattr(exc, "cause", None), _DISPLAYS_ATTR, None))
        raise exc.with_traceback(None) from None  # its message has the remote traceback; ours is noise
    _publish(displays)
    return None if _ends_with_semicolon(cell) else value


def _task_options(args: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"max_retries": args.retries}
    for flag, name in (("--num-cpus", "num_cpus"), ("--num-gpus", "num_gpus")):
        value = getattr(args, name)
        if value is not None:
            if not value >= 0:
                raise UsageError(f"{flag} must be a number >= 0, got {value:g}")
            options[name] = value
    if args.retries < -1:
        raise UsageError(f"--retries must be >= 0 (or -1 for no limit), got {args.retries}")
    if args.resources is not None:
        example = 'a JSON object such as \'{"accel": 1}\''
        try:
            resources = json.loads(args.resources)
        except ValueError:
            raise UsageError(f"--resources must be {example}, got {args.resources!r}") from None
        if not isinstance(resources, dict):
            raise UsageError(f"--resources must be {example}, got {args.resources!r}")
        options["resources"] = resources
    try:
        _runner().options(**options)
    except (TypeError, ValueError) as exc:
        flag = "--resources" if "resource" in str(exc) else "flags"
        raise UsageError(f"%%remote {flag}: {exc}") from None
    return options


# -- which names the cell reads -------------------------------------------------------------
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def free_names(cell: str, tree: ast.Module | None = None) -> set[str]:
    """Global names ``cell`` reads before it binds them at module level, minus the
    names it imports (builtins included: the caller tells them apart)."""
    tree = tree if tree is not None else ast.parse(cell)
    first_read: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        target = node.target if isinstance(node, ast.AugAssign) else node
        if isinstance(target, ast.Name) and (target is not node or isinstance(node.ctx, ast.Load)):
            first_read[target.id] = min(first_read.get(target.id, _start(target)), _start(target))
    read: set[str] = set()
    imported: set[str] = set()
    stack = [symtable.symtable(cell, "<cell>", "exec")]
    while stack:  # symtable knows which names are a scope's own and which are global
        table = stack.pop()
        stack.extend(table.get_children())
        for sym in table.get_symbols():
            name = sym.get_name()
            if sym.is_global() and (sym.is_referenced() or name in first_read):
                read.add(name)
            if table.get_type() == "module" and sym.is_imported():
                imported.add(name)
    bound = _module_bindings(tree)
    return {n for n in read - imported if not (n in bound and bound[n] < first_read.get(n, (0, 0)))}


def _start(node: Any) -> tuple[int, int]:
    return node.lineno, node.col_offset


def _end(node: Any) -> tuple[int, int]:
    return node.end_lineno, node.end_col_offset


def _module_bindings(tree: ast.Module) -> dict[str, tuple[int, int]]:
    """Where each name is first bound at module level (an assignment binds after its
    value is evaluated, a ``for`` target after its iterable)."""
    bound: dict[str, tuple[int, int]] = {}

    def bind(name: str, pos: tuple[int, int]) -> None:
        bound[name] = min(bound.get(name, pos), pos)

    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bind(node.name, _start(node))
            continue
        if isinstance(node, _SCOPES):
            continue
        targets: list[ast.AST] = []
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            targets, after = (node.targets if isinstance(node, ast.Assign) else [node.target]), _end(node)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            targets, after = [node.target], _end(node.iter)
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store):
                    bind(name.id, after)
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bind(node.id, _start(node))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bind((alias.asname or alias.name).split(".")[0], _end(node))
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bind(node.name, _start(node))
        stack.extend(child for child in ast.iter_child_nodes(node) if all(child is not t for t in targets))
    return bound


def _ship(user_ns: dict[str, Any], names: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values to send, each checked with cloudpickle, and the modules (by name)."""
    values: dict[str, Any] = {}
    modules: dict[str, str] = {}
    for name in sorted(names):
        if name not in user_ns or (name.startswith("__") and name.endswith("__")):
            continue
        value = user_ns[name]
        if name in builtins.__dict__ and value is builtins.__dict__[name]:
            continue  # the worker has its own (IPython's display is provided there)
        if isinstance(value, types.ModuleType):
            modules[name] = value.__name__
            continue
        try:  # out-of-band buffers are not copied: a check, not a second serialization
            cloudpickle.dumps(value, protocol=5, buffer_callback=lambda _buf: None)
        except Exception as exc:  # noqa: BLE001 - any pickling failure is the user's to fix
            kind = type(value)
            kind_name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UsageError(
                f"cannot ship `{name}` ({kind_name}) to the cluster: {reason}; create it inside the cell instead"
            ) from None
        values[name] = value
    return values, modules


def _ends_with_semicolon(cell: str) -> bool:
    """IPython's rule: a final ``;`` (comments aside) hides the cell's value."""
    skip = {tokenize.ENDMARKER, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT}
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(cell).readline) if t.type not in skip]
    return bool(tokens) and tokens[-1].string == ";"


def _publish(displays: Any) -> None:
    from IPython.display import publish_display_data

    for data, metadata in displays or ():
        publish_display_data(data=data, metadata=metadata)


# -- the worker side ------------------------------------------------------------------------
@functools.cache
def _runner() -> Any:
    return nbcluster.remote(num_returns=2, max_retries=0)(_make_cell_function())


def _make_cell_function() -> Any:
    # A closure, so cloudpickle ships it by value: the worker does not import this
    # module, and runs (without display formatting) even where IPython is missing.
    def remote_cell(source: str, filename: str, values: dict, modules: dict) -> tuple:
        import ast
        import asyncio
        import builtins
        import importlib
        import inspect
        import linecache

        displays: list = []
        try:
            from IPython.core import display_functions
            from IPython.core.formatters import DisplayFormatter
            import IPython.display as ipython_display

            formatter, original = DisplayFormatter(), display_functions.display
        except ImportError:
            display_functions = ipython_display = formatter = original = None

        def display(*objs: Any, include: Any = None, exclude: Any = None, metadata: Any = None,
                    raw: bool = False, **_ignored: Any) -> None:
            for obj in objs:
                if raw or formatter is None:
                    data, md = (obj if raw else {"text/plain": repr(obj)}), {}
                else:
                    data, md = formatter.format(obj, include=include, exclude=exclude)
                if data:
                    displays.append((data, {**(md or {}), **(metadata or {})}))

        ns: dict = {"__name__": "__main__", "__builtins__": builtins, "display": display}
        ns.update({name: importlib.import_module(module) for name, module in modules.items()})
        ns.update({k: display if original is not None and v is original else v for k, v in values.items()})
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        tree = ast.parse(source, filename)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        codes = [compile(tree, filename, "exec", flags=flags)]
        if last is not None:
            codes.append(compile(ast.Expression(last.value), filename, "eval", flags=flags))
        patched = [(m, m.display) for m in (ipython_display, display_functions) if m is not None]
        for module, _ in patched:
            module.display = display
        try:
            for code in codes:  # the value of the last one is the cell's
                value = eval(code, ns)  # noqa: S307 - running the user's cell is the point
                if code.co_flags & inspect.CO_COROUTINE:  # top-level await
                    value = asyncio.run(value)
            value = value if last is not None else None
        except BaseException as exc:
            try:  # the driver shows what the cell displayed before it failed
                exc._nbcluster_cell_displays = displays
            except Exception:  # noqa: BLE001
                pass
            raise
        finally:
            for module, saved in patched:
                module.display = saved
        return value, displays

    remote_cell.__qualname__ = "remote_cell"
    return remote_cell
