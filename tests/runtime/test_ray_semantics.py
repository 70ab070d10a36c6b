"""Where nbcluster behaves as Ray when Ray programs run unchanged (issue 19's list):
arguments checked at ``.remote()``, actors without methods, static and class methods,
inheritance, ``__repr__`` in errors, decorated functions, ``wait`` edge cases,
``init(namespace=...)``, the size limit of a pickled function, the runtime context."""

from __future__ import annotations

import functools
import os

import pytest

import nbcluster
from ..conftest import run_python

pytestmark = pytest.mark.usefixtures("cluster")


@nbcluster.remote
def add(a, b=1, *, scale=1):
    return (a + b) * scale


class Base:
    label = "base"

    def __init__(self, start=0):
        self.value = start

    def base_method(self):
        return f"{self.label}:{self.value}"

    @classmethod
    def kind(cls):
        return cls.label

    @staticmethod
    def double(x):
        return 2 * x


@nbcluster.remote
class Derived(Base):
    label = "derived"

    def add(self, n):
        self.value += n
        return self.value

    def fail(self):
        raise ValueError("derived failed")

    def __repr__(self):
        return f"Derived(value={self.value})"


def test_arguments_are_checked_at_remote_time():
    with pytest.raises(TypeError, match=r"add\(\) too many positional arguments"):
        add.remote(1, 2, 3)
    with pytest.raises(TypeError, match=r"add\(\) missing a required argument: 'a'"):
        add.remote(b=2)
    with pytest.raises(TypeError, match=r"add\(\) got an unexpected keyword argument 'c'"):
        add.options(name="x").remote(1, c=3)
    with pytest.raises(TypeError, match=r"Derived\(\) too many positional arguments"):
        Derived.remote(1, 2)
    actor = Derived.remote(1)
    with pytest.raises(TypeError, match=r"Derived.add\(\) missing a required argument: 'n'"):
        actor.add.remote()
    with pytest.raises(TypeError, match=r"Derived.double\(\) too many positional arguments"):
        actor.double.remote(1, 2)
    # Handles that travel keep checking; the call still runs when it fits.
    assert nbcluster.get(add.remote(1, scale=3)) == 6

    @nbcluster.remote
    def through(handle):
        try:
            handle.add.remote(1, 2)
        except TypeError as exc:
            return str(exc)

    assert "too many positional arguments" in nbcluster.get(through.remote(actor))


def test_a_handle_from_get_actor_checks_arguments_as_the_classs_does():
    original = Derived.options(name="checked_by_name").remote(5)
    nbcluster.get(original.__ray_ready__.remote())
    found = nbcluster.get_actor("checked_by_name")
    with pytest.raises(TypeError, match=r"Derived.add\(\) missing a required argument: 'n'"):
        found.add.remote()
    with pytest.raises(TypeError, match=r"Derived.add\(\) got an unexpected keyword argument 'm'"):
        found.add.remote(1, m=1)
    with pytest.raises(TypeError, match=r"Derived.kind\(\) too many positional arguments"):
        found.kind.remote(1)  # a classmethod: no implicit argument left
    assert nbcluster.get(found.add.remote(2)) == 7 and nbcluster.get(found.double.remote(x=4)) == 8

    @nbcluster.remote
    def found_elsewhere():  # another process's handle, looked up by name
        try:
            nbcluster.get_actor("checked_by_name").add.remote(1, 2)
        except TypeError as exc:
            return str(exc)

    assert "too many positional arguments" in nbcluster.get(found_elsewhere.remote())
    nbcluster.kill(original)


def test_an_actor_class_without_methods():
    @nbcluster.remote
    class Empty:
        pass

    first, second = Empty.remote(), Empty.remote()
    assert nbcluster.get([first.__ray_ready__.remote(), second.__ray_ready__.remote()]) == [True, True]
    assert first != second and first == first
    assert len({first, second, first}) == 2
    assert repr(first).startswith("Actor(Empty, ")

    @nbcluster.remote
    def echo(handle):
        return handle

    copy = nbcluster.get(echo.remote(first))
    assert copy == first and hash(copy) == hash(first)


def test_static_and_class_methods_inheritance_and_class_attributes():
    actor = Derived.remote(5)
    assert nbcluster.get(actor.base_method.remote()) == "derived:5"  # inherited, with the subclass's attribute
    assert nbcluster.get(actor.kind.remote()) == "derived"  # a classmethod sees the subclass
    assert nbcluster.get(actor.double.remote(21)) == 42  # a staticmethod
    assert nbcluster.get(actor.add.remote(2)) == 7
    with pytest.raises(AttributeError, match="has no method 'label'"):
        _ = actor.label  # a class attribute is not a method of the handle (as Ray)


def test_repr_of_the_actor_in_its_errors():
    actor = Derived.remote(3)
    with pytest.raises(ValueError, match="derived failed") as info:
        nbcluster.get(actor.fail.remote())
    text = str(info.value)
    assert f"actor_id={actor._actor_id.hex()}" in text
    assert "repr=Derived(value=3)" in text
    assert info.value.actor_repr == "Derived(value=3)"


def _logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return ("logged", fn(*args, **kwargs))

    return wrapper


@nbcluster.remote(num_returns=2)
@_logged
def pair(x):
    return x


@nbcluster.remote
class Decorated:
    @_logged
    def plain(self, x):
        return x

    @nbcluster.method(num_returns=2)
    def two(self, x):
        return x, x + 1


def test_decorated_functions_and_methods():
    first, second = pair.remote(4)
    assert nbcluster.get([first, second]) == ["logged", 4]
    with pytest.raises(TypeError, match="missing a required argument: 'x'"):  # the wrapped signature
        pair.remote()
    actor = Decorated.remote()
    assert nbcluster.get(actor.plain.remote(3)) == ("logged", 3)
    refs = actor.two.remote(1)
    assert isinstance(refs, list) and nbcluster.get(refs) == [1, 2]


def test_wait_edge_cases():
    assert nbcluster.wait([]) == ([], [])
    assert nbcluster.wait([], num_returns=3, timeout=0) == ([], [])
    refs = [add.remote(i) for i in range(3)]
    nbcluster.get(refs)
    ready, rest = nbcluster.wait(refs)  # num_returns defaults to 1
    assert ready == refs[:1] and rest == refs[1:]
    with pytest.raises(ValueError, match="cannot exceed"):
        nbcluster.wait(refs, num_returns=4)


def test_init_validates_namespace():
    with pytest.raises(TypeError, match="namespace must be None or a string"):
        nbcluster.init(namespace=5)
    with pytest.raises(ValueError, match="not a valid namespace"):
        nbcluster.init(namespace="")
    assert nbcluster.is_initialized()  # the module's cluster is untouched


def test_a_function_past_the_size_limit_names_the_variable(monkeypatch):
    monkeypatch.setenv("NBCLUSTER_FUNCTION_SIZE_ERROR_THRESHOLD", str(2**20))
    weights = os.urandom(3 * 2**20)

    @nbcluster.remote
    def score():
        return len(weights)

    with pytest.raises(ValueError, match=r"'.*score' is too large \(3\.0 MiB > FUNCTION_SIZE_ERROR_THRESHOLD"
                                         r"=1\.0 MiB\); most of it is `weights`"):
        score.remote()
    ref = nbcluster.put(weights)

    @nbcluster.remote
    def small(w):
        return len(w)

    assert nbcluster.get(small.remote(ref)) == len(weights)


@nbcluster.remote
class Probe:
    def context(self):
        ctx = nbcluster.get_runtime_context()
        return ctx.get(), ctx.get_assigned_resources(), ctx.current_actor, ctx.get_accelerator_ids()


def test_runtime_context_as_ray():
    ctx = nbcluster.get_runtime_context()
    assert set(ctx.get()) == {"job_id", "node_id", "namespace"}  # no task or actor in a driver
    assert ctx.get_assigned_resources() == {} and ctx.get_accelerator_ids() == {"GPU": []}
    assert ctx.get_task_id() is None and ctx.get_worker_id()
    with pytest.raises(RuntimeError, match="only available in an actor"):
        _ = ctx.current_actor

    @nbcluster.remote(num_cpus=0.5)
    def in_task():
        inner = nbcluster.get_runtime_context()
        return inner.get(), inner.get_assigned_resources(), inner.get_task_id()

    got, resources, task_id = nbcluster.get(in_task.remote())
    assert set(got) == {"job_id", "node_id", "namespace", "task_id"} and got["task_id"] == task_id
    assert got["job_id"] == ctx.get_job_id() and got["namespace"] == ctx.namespace
    assert resources == {"CPU": 0.5}

    actor = Probe.options(num_cpus=1).remote()
    got, resources, me, accelerators = nbcluster.get(actor.context.remote())
    assert got["actor_id"] == actor._actor_id.hex() and "task_id" in got
    assert resources == {"CPU": 1.0} and accelerators == {"GPU": []}
    assert me == actor and nbcluster.get(me.__ray_ready__.remote())


def test_get_runtime_context_starts_a_cluster_as_ray():
    proc = run_python(
        """
        import nbcluster
        ctx = nbcluster.get_runtime_context()
        print(nbcluster.is_initialized(), sorted(ctx.get()), flush=True)
        nbcluster.shutdown()
        """,
        timeout=90,
    )
    assert proc.stdout.split("\n")[0] == "True ['job_id', 'namespace', 'node_id']"
    assert proc.stderr.count("nbcluster was not initialized: starting an embedded cluster") == 1


def test_assigned_resources_name_bundle_resources_as_ray():
    from nbcluster.runtime import bundles

    group = bytes(range(16))
    held = bundles.in_group({"CPU": 1.0, "GPU": 0.5}, group, 0)
    assert bundles.plain_resources(held) == {"CPU": 1.0, "GPU": 0.5}  # no markers, no double count
    assert bundles.plain_resources({"CPU": 2.0, "custom": 1.0}) == {"CPU": 2.0, "custom": 1.0}
