"""Bad input gets a clear TypeError/ValueError naming the problem and the fix, and
the cluster keeps working afterwards."""

from __future__ import annotations

import threading

import pytest

import nbcluster

pytestmark = pytest.mark.usefixtures("cluster")


@nbcluster.remote
def echo(*args, **kwargs):
    return args, kwargs


def test_calling_a_remote_function_directly():
    with pytest.raises(TypeError, match=r"echo\.remote\(\.\.\.\)"):
        echo(1)


def test_remote_on_a_non_callable():
    with pytest.raises(TypeError, match="got 42, which is not a function"):
        nbcluster.remote(42)
    with pytest.raises(TypeError, match="takes a function or a class, not int"):
        nbcluster.remote(num_cpus=1)(42)
    with pytest.raises(TypeError, match="bare"):
        nbcluster.remote("not a function", num_cpus=1)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"num_cpu": 1}, ValueError, "unknown option.*'num_cpu'.*num_cpus"),
        ({"num_cpus": -1}, ValueError, "num_cpus must be >= 0"),
        ({"num_cpus": "2"}, TypeError, "num_cpus must be a number"),
        ({"num_returns": 1.5}, TypeError, "num_returns must be an int"),
        ({"max_retries": -2}, ValueError, "max_retries must be >= -1"),
        ({"resources": {"CPU": 1}}, ValueError, "num_cpus"),
        ({"resources": ["accel"]}, TypeError, "resources must be a dict"),
        ({"retry_exceptions": "yes"}, TypeError, "retry_exceptions must be"),
        ({"retry_exceptions": [int]}, TypeError, "retry_exceptions must be"),
    ],
)
def test_invalid_options(options, error, match):
    with pytest.raises(error, match=match):
        nbcluster.remote(**options)(lambda: None)
    with pytest.raises(error, match=match):
        echo.options(**options)


def test_unpicklable_argument_is_named():
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"argument 1 of .*echo\(\).*_thread\.lock.*picklable"):
        echo.remote(1, lock)
    with pytest.raises(TypeError, match=r"argument 'guard' of .*echo\(\).*_thread\.lock"):
        echo.remote(guard=lock)
    assert nbcluster.get(echo.remote(1)) == ((1,), {})  # the cluster carries on


def test_get_of_something_that_is_not_a_ref():
    with pytest.raises(TypeError, match="get\\(\\) takes an ObjectRef.*not int"):
        nbcluster.get(42)
    with pytest.raises(TypeError, match="not str"):
        nbcluster.get([echo.remote(), "x"])
    with pytest.raises(ValueError, match="timeout"):
        nbcluster.get(echo.remote(), timeout=-1)


def test_wait_arguments():
    ref = echo.remote()
    with pytest.raises(TypeError, match="list of ObjectRefs"):
        nbcluster.wait(ref)
    with pytest.raises(ValueError, match="num_returns .* cannot exceed"):
        nbcluster.wait([ref], num_returns=2)
    with pytest.raises(ValueError, match="unique"):
        nbcluster.wait([ref, ref])
    with pytest.raises(ValueError, match="num_returns must be"):
        nbcluster.wait([ref], num_returns=0)


def test_cancel_arguments():
    with pytest.raises(TypeError, match="cancel\\(\\) takes an ObjectRef"):
        nbcluster.cancel("ref")


def test_init_arguments_with_an_address():
    with pytest.raises(ValueError, match="cannot be given when connecting"):
        nbcluster.init(address="auto", num_cpus=2)


def test_init_argument_values():
    with pytest.raises(ValueError, match="not supported.*env_vars"):
        nbcluster.init(runtime_env={"conda": ["requests"]})
    with pytest.raises(TypeError, match="env_vars"):
        nbcluster.init(runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(ValueError, match="num_cpus must be"):
        nbcluster.init(num_cpus=-1)
    with pytest.raises(ValueError, match="object_store_memory"):
        nbcluster.init(object_store_memory=0)
    with pytest.raises(TypeError, match="address"):
        nbcluster.init(address=1234)
