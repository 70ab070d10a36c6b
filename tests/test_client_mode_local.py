"""Client mode on one machine (``nbcluster://`` forces it where a node runs): what
the cross-machine tests (test_client_mode.py) do not show — errors and nested refs
through the proxy, futures and ``await``, the connection made again within the
grace with the session kept, and the errors for bad input."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest

from .cli_tools import Machine


@pytest.fixture(scope="module")
def head() -> Iterator[tuple[Machine, str]]:
    machine = Machine("client-local")
    try:
        address = machine.start_head("--port", "0", "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--dashboard-port", "0")
        yield machine, address
    finally:
        machine.close()


def drive(head: tuple[Machine, str], code: str) -> dict:
    machine, address = head
    preamble = f"""
import asyncio, json, os, time
import nbcluster
info = nbcluster.init(address="nbcluster://{address}", token_file={str(machine.token_file())!r})
assert info.client_mode, info
"""
    out = machine.python(preamble + textwrap.dedent(code), timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_errors_nested_refs_futures_and_timeouts(head: tuple[Machine, str]) -> None:
    out = drive(head, """
        @nbcluster.remote
        def fail(): raise ValueError("bad value in a task")
        try:
            nbcluster.get(fail.remote())
            caught = None
        except ValueError as exc:
            caught = [type(exc).__name__, isinstance(exc, nbcluster.exceptions.RayTaskError), "bad value" in str(exc)]
        @nbcluster.remote
        def wrap(n): return [nbcluster.put(list(range(n)))]
        outer = wrap.remote(5)
        inner = nbcluster.get(outer)[0]
        del outer  # the inner ref stays valid: the proxy holds it for this client
        time.sleep(0.5)
        nested = nbcluster.get(inner)
        async def main():
            @nbcluster.remote
            def square(x): return x * x
            return await square.remote(7)
        awaited = asyncio.run(main())
        @nbcluster.remote
        def slow(): time.sleep(30)
        pending = slow.remote()
        try:
            nbcluster.get(pending, timeout=0.3)
            timed_out = False
        except nbcluster.exceptions.GetTimeoutError:
            timed_out = True
        ready, rest = nbcluster.wait([pending], timeout=0.2)
        nbcluster.cancel(pending)
        future = nbcluster.put("via a future").future().result(timeout=10)
        try:
            nbcluster.put(inner)
            put_ref = None
        except TypeError as exc:
            put_ref = str(exc)
        print(json.dumps({"caught": caught, "nested": nested, "awaited": awaited, "timed_out": timed_out,
                          "ready": len(ready), "rest": len(rest), "future": future, "put_ref": put_ref}))
    """)
    assert out["caught"] == ["TaskError(ValueError)", True, True], out  # as a local driver raises it
    assert out["nested"] == [0, 1, 2, 3, 4] and out["awaited"] == 49 and out["future"] == "via a future"
    assert out["timed_out"] and out["ready"] == 0 and out["rest"] == 1
    assert "put() of an ObjectRef is not allowed" in out["put_ref"]


def test_a_dropped_connection_is_made_again_and_the_session_kept(head: tuple[Machine, str]) -> None:
    out = drive(head, """
        from nbcluster.runtime.core import worker_state
        @nbcluster.remote
        def double(x): return 2 * x
        kept = nbcluster.put("kept across the reconnect")
        before = nbcluster.get(double.remote(1))
        core = worker_state.current
        first = core.link.conn
        core.call_soon(first.close)  # the connection drops (as a network blip would)
        deadline = time.time() + 20
        while (core.link.conn is first or core.link.conn is None) and time.time() < deadline:
            time.sleep(0.05)
        after = nbcluster.get([double.remote(2), kept])
        print(json.dumps({"before": before, "after": after, "new_connection": core.link.conn is not first,
                          "endpoint_same": core.link.endpoint}))
    """)
    assert out["new_connection"] and out["before"] == 2
    assert out["after"] == [4, "kept across the reconnect"]


def test_bad_addresses_are_clear_errors(head: tuple[Machine, str]) -> None:
    machine, address = head
    out = machine.python(textwrap.dedent(f"""
        import json, time, nbcluster
        token_file = {str(machine.token_file())!r}
        errors = {{}}
        for name, kwargs in {{
            "auto": dict(address="nbcluster://auto"),
            "loopback": dict(address="127.0.0.1:1"),
            "no_token": dict(address="nbcluster://{address}"),
            "closed_port": dict(address="nbcluster://127.0.0.1:1", token_file=token_file,
                                _system_config={{"startup_timeout_s": 60}}),
            "unknown_host": dict(address="nbcluster://no-such-host.invalid:6380", token_file=token_file),
        }}.items():
            started = time.monotonic()
            try:
                nbcluster.init(**kwargs)
                errors[name] = None
            except Exception as exc:
                errors[name] = [type(exc).__name__, str(exc), time.monotonic() - started]
        print(json.dumps(errors))
    """), env={"NBCLUSTER_TEMP_DIR": str(machine.root / "empty")}).stdout
    errors = json.loads(out.strip().splitlines()[-1])
    assert errors["auto"][0] == "ValueError" and "host:port" in errors["auto"][1]
    assert errors["loopback"][0] == "ClusterConnectionError" and "nbcluster://127.0.0.1:1" in errors["loopback"][1]
    assert errors["no_token"][0] == "AuthenticationError" and "token" in errors["no_token"][1]
    # A wrong address is told in seconds, not after the startup timeout (60 s here).
    kind, message, took = errors["closed_port"]
    assert kind == "ClusterConnectionError" and "nothing listens there" in message and took < 20, errors
    kind, message, took = errors["unknown_host"]
    assert kind == "ClusterConnectionError" and "no-such-host.invalid:6380" in message and took < 20, errors


def test_large_values_come_from_the_object_port_or_else_through_the_relay(head: tuple[Machine, str]) -> None:
    out = drive(head, """
        import logging
        from nbcluster.runtime.core import worker_state
        core = worker_state.current
        data = os.urandom(3 * 2**20)
        ref = nbcluster.put(data)
        direct = nbcluster.get(ref) == data and not core._object_port_error
        warnings = []
        logging.getLogger("nbcluster").addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: warnings.append(r.getMessage())})())
        core.object_address = "127.0.0.1:1"  # a port nothing listens on: the relay serves instead
        relayed = nbcluster.get(ref) == data and nbcluster.get(ref) == data
        print(json.dumps({"direct": direct, "relayed": relayed, "warnings": warnings}))
    """)
    assert out["direct"] and out["relayed"]
    assert len(out["warnings"]) == 1 and "object port 127.0.0.1:1 cannot be reached" in out["warnings"][0], out


def test_generators_and_concurrency_groups_through_the_proxy(head: tuple[Machine, str]) -> None:
    out = drive(head, """
        from nbcluster.util.queue import Queue
        @nbcluster.remote
        def gated(n, gate):
            for i in range(n):
                if i:
                    gate.get(timeout=60)
                yield i
        gate = Queue()
        gen = gated.remote(3, gate)
        first = nbcluster.get(next(gen))
        early = nbcluster.wait([gen.completed()], timeout=0)[0] == []  # still running
        not_ready = nbcluster.wait([gen], timeout=0.2)[0] == []
        gate.put(None); gate.put(None)
        rest = [nbcluster.get(r) for r in gen]
        async def consume():
            @nbcluster.remote
            def count(n):
                yield from range(n)
            return [await ref async for ref in count.remote(3)]
        awaited = asyncio.run(consume())
        @nbcluster.remote
        def fails():
            yield 1
            raise KeyError("item two")
        refs = list(fails.remote())
        try:
            nbcluster.get(refs[1])
            failed = None
        except KeyError:
            failed = "KeyError"
        dynamic = [nbcluster.get(r) for r in nbcluster.get(
            gated.options(num_returns="dynamic").remote(1, gate))]
        @nbcluster.remote(concurrency_groups={"io": 2})
        class Groups:
            def __init__(self):
                import threading
                self.barrier = threading.Barrier(2)
            @nbcluster.method(concurrency_group="io")
            def meet(self):
                self.barrier.wait(timeout=30)
                return "met"
            def stream(self, n):
                yield from range(n)
        actor = Groups.remote()
        met = nbcluster.get([actor.meet.remote(), actor.meet.remote()], timeout=60)
        streamed = [nbcluster.get(r) for r in actor.stream.remote(2)]
        print(json.dumps(dict(first=first, early=early, not_ready=not_ready, rest=rest, awaited=awaited,
                              failed=failed, n_refs=len(refs), dynamic=dynamic, met=met, streamed=streamed)))
    """)
    assert out == dict(first=0, early=True, not_ready=True, rest=[1, 2], awaited=[0, 1, 2], failed="KeyError",
                       n_refs=2, dynamic=[0], met=["met", "met"], streamed=[0, 1])


def test_a_tasks_own_runtime_env_travels_through_the_proxy(head: tuple[Machine, str], tmp_path) -> None:
    from .runtime.test_pip_runtime_env import build_wheel, spec

    lib = tmp_path / "client_lib"
    lib.mkdir()
    (lib / "__init__.py").write_text("VALUE = 'uploaded by the client'\n")
    pip = spec(build_wheel(tmp_path, "nbc_client_pkg", "1.0"), "nbc_client_pkg")
    out = drive(head, f"""
        @nbcluster.remote
        def read():
            import client_lib
            return os.environ.get("NBC_CLIENT_VAR"), client_lib.VALUE
        env = {{"env_vars": {{"NBC_CLIENT_VAR": "set"}}, "py_modules": [{str(lib)!r}]}}
        task = nbcluster.get(read.options(runtime_env=env).remote(), timeout=60)
        @nbcluster.remote
        class Reader:
            def read(self):
                import nbc_client_pkg
                return nbc_client_pkg.VALUE, nbcluster.get_runtime_context().namespace
        actor = Reader.options(runtime_env={pip!r}).remote()
        value, namespace = nbcluster.get(actor.read.remote(), timeout=120)
        print(json.dumps([task, value, namespace == nbcluster.get_runtime_context().namespace]))
    """)
    # The actor's environment is laid over the client's job's: same namespace.
    assert out == [["set", "uploaded by the client"], "nbc_client_pkg 1.0", True]
