"""runtime_env per task and per actor (``@remote(runtime_env=...)``, ``.options(...)``):
laid over the job's as Ray does (env_vars merge, other keys replace), packages
uploaded once by content, workers pooled per environment, children inheriting their
parent's, a setup failure raised as RuntimeEnvSetupError with the node going on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nbcluster
from nbcluster.exceptions import RuntimeEnvSetupError
from nbcluster.runtime.runtime_env import RuntimeEnv, packages

JOB_ENV = {"env_vars": {"NBC_A": "job", "NBC_B": "job"}}


@pytest.fixture(scope="module")
def cluster():
    from ..conftest import FAST_CONFIG

    nbcluster.init(num_cpus=2, runtime_env=JOB_ENV, _system_config=FAST_CONFIG)
    try:
        yield
    finally:
        nbcluster.shutdown()


@nbcluster.remote
def env_of(*names: str) -> tuple:
    return tuple(os.environ.get(n) for n in names) + (os.getpid(),)


@nbcluster.remote
def cwd_and_import(module: str) -> tuple:
    import importlib

    return os.getcwd(), importlib.import_module(module).VALUE, sorted(os.listdir("."))


@nbcluster.remote(runtime_env={"env_vars": {"NBC_B": "decorated"}})
def decorated() -> str:
    return os.environ["NBC_B"]


@nbcluster.remote
def parent_of_child() -> tuple:
    return nbcluster.get(env_of.remote("NBC_A", "NBC_C"))[:2]


def test_env_vars_per_task_merge_over_the_jobs_and_never_share_a_worker(cluster):
    a, b, plain_pid = nbcluster.get(env_of.remote("NBC_A", "NBC_B"))
    assert (a, b) == ("job", "job")
    ref = env_of.options(runtime_env={"env_vars": {"NBC_B": "task", "NBC_C": "c"}}).remote("NBC_A", "NBC_B", "NBC_C")
    a, b, c, pid = nbcluster.get(ref)
    assert (a, b, c) == ("job", "task", "c") and pid != plain_pid
    assert nbcluster.get(decorated.remote()) == "decorated"
    # The job's tasks still run in workers without the task's variables.
    for a, b, _pid in nbcluster.get([env_of.remote("NBC_A", "NBC_B") for _ in range(6)]):
        assert (a, b) == ("job", "job")
    # A child inherits its parent's environment.
    inherited = parent_of_child.options(runtime_env={"env_vars": {"NBC_C": "parent"}}).remote()
    assert nbcluster.get(inherited) == ("job", "parent")


def test_working_dir_and_py_modules_per_task_with_excludes(cluster, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "in_work.py").write_text("VALUE = 'from working_dir'\n")
    (work / "big.csv").write_text("x\n")
    lib = tmp_path / "mylib"
    lib.mkdir()
    (lib / "__init__.py").write_text("VALUE = 'from py_modules'\n")
    env = {"working_dir": str(work), "excludes": ["*.csv"]}
    cwd, value, listing = nbcluster.get(cwd_and_import.options(runtime_env=env).remote("in_work"))
    assert value == "from working_dir" and Path(cwd).name.startswith(packages.PREFIX)
    assert "big.csv" not in listing and "in_work.py" in listing
    _, value, _ = nbcluster.get(cwd_and_import.options(runtime_env={"py_modules": [str(lib)]}).remote("mylib"))
    assert value == "from py_modules"


def test_an_actor_runs_in_its_own_environment(cluster, tmp_path):
    (tmp_path / "actor_mod.py").write_text("VALUE = 42\n")

    @nbcluster.remote(runtime_env={"env_vars": {"NBC_B": "actor"}})
    class Reader:
        def read(self):
            try:
                import actor_mod
            except ImportError:
                return os.environ["NBC_A"], os.environ["NBC_B"], None
            return os.environ["NBC_A"], os.environ["NBC_B"], actor_mod.VALUE

    reader = Reader.options(runtime_env={"working_dir": str(tmp_path), "env_vars": {"NBC_B": "options"}}).remote()
    assert nbcluster.get(reader.read.remote(), timeout=60) == ("job", "options", 42)
    assert nbcluster.get(Reader.remote().read.remote(), timeout=60) == ("job", "actor", None)


def test_a_setup_failure_raises_runtime_env_setup_error_and_the_node_goes_on(cluster):
    missing = f"gcs://{packages.PREFIX}{'0' * 32}.zip"
    with pytest.raises(RuntimeEnvSetupError, match="not in the cluster's package store"):
        nbcluster.get(env_of.options(runtime_env={"py_modules": [missing]}, max_retries=0).remote("NBC_A"), timeout=60)
    assert nbcluster.get(env_of.remote("NBC_A"), timeout=60)[0] == "job"


def test_runtime_env_is_validated_where_it_enters(cluster):
    with pytest.raises(TypeError, match="env_vars must be a dict of str to str"):
        env_of.options(runtime_env={"env_vars": {"X": 1}})
    with pytest.raises(ValueError, match="'conda' is not supported"):
        nbcluster.remote(runtime_env={"conda": "x"})(lambda: None)
    with pytest.raises(ValueError, match="setup_timeout_seconds"):
        env_of.options(runtime_env={"config": {"setup_timeout_seconds": 0}})
    job = RuntimeEnv.parse({"env_vars": {"A": "1"}, "py_modules": ["gcs://" + packages.PREFIX + "a" * 32 + ".zip"]})
    task = RuntimeEnv.parse({"env_vars": {"B": "2"}, "working_dir": "gcs://" + packages.PREFIX + "b" * 32 + ".zip"})
    merged = job.override(task)
    assert dict(merged.env_vars) == {"A": "1", "B": "2"} and merged.py_modules == job.py_modules
    assert merged.working_dir == task.working_dir
