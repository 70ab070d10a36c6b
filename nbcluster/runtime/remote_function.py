"""``@nbcluster.remote`` on a function: a :class:`RemoteFunction`."""

from __future__ import annotations

import functools
import hashlib
import inspect
import threading
from collections.abc import Callable
from typing import Any

from nbcluster.runtime.objects.serialization import dumps_definition
from nbcluster.runtime.core.tasks import FunctionInfo
from nbcluster.runtime.options import task_options, validate_task_options
from nbcluster.runtime.signatures import check_call, portable_signature
from nbcluster.runtime.submission import submit_task


class RemoteFunction:
    """A function that runs as a task: call ``.remote(...)``, get an ObjectRef."""

    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        if "num_returns" not in options and (
            inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
        ):
            options = {**options, "num_returns": "streaming"}  # a generator streams (as Ray)
        self._function = function
        self._options = options
        self._task_options = task_options(options)
        self._info: FunctionInfo | None = None
        self._signature: Any = False  # computed at the first call
        self._lock = threading.Lock()
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self._function.__name__
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of {name}(...), call "
            f"{name}.remote(...), which runs it as a task and returns an ObjectRef; "
            f"nbcluster.get() the ref for the value."
        )

    def _function_info(self) -> FunctionInfo:
        if self._info is None:
            with self._lock:
                if self._info is None:
                    pickled = dumps_definition(self._function)
                    digest = hashlib.sha1(pickled).digest()[:16]
                    name = f"{self._function.__module__}.{self._function.__qualname__}"
                    self._info = FunctionInfo(digest, name, pickled)
        return self._info

    def _check_args(self, args: tuple, kwargs: dict) -> None:
        """TypeError now when the arguments do not fit the function (as Ray)."""
        if self._signature is False:
            self._signature = portable_signature(self._function)
        check_call(self._signature, self._function.__name__, args, kwargs)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function as a task; returns an ObjectRef (or several, by ``num_returns``)."""
        self._check_args(args, kwargs)
        return submit_task(self, self._task_options, args, kwargs)

    def options(self, **options: Any) -> "_OptionsView":
        """These options for the next ``.remote()`` call (the function is unchanged)."""
        merged = {**self._options, **validate_task_options(options, where=f"{self._function.__name__}.options()")}
        return _OptionsView(self, task_options(merged))

    def __reduce__(self) -> Any:
        return (RemoteFunction, (self._function, self._options))

    def __repr__(self) -> str:
        return f"<RemoteFunction {self._function.__module__}.{self._function.__qualname__}>"


class _OptionsView:
    __slots__ = ("_remote_function", "_task_options")

    def __init__(self, remote_function: RemoteFunction, options: Any) -> None:
        self._remote_function = remote_function
        self._task_options = options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        self._remote_function._check_args(args, kwargs)
        return submit_task(self._remote_function, self._task_options, args, kwargs)
