"""The runtime environment value: validated once where it enters, carried as is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbcluster.runtime.runtime_env import RuntimeEnv
from nbcluster.runtime.runtime_env import packages


def _uri() -> str:
    return f"gcs://{packages.PREFIX}{'a' * 32}.zip"


def test_a_users_dict_becomes_a_frozen_value(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    raw = {"working_dir": str(tmp_path), "py_modules": [str(tmp_path / "pkg"), _uri()], "env_vars": {"A": "1"}}
    env = RuntimeEnv.parse(raw)
    assert env.working_dir == str(tmp_path) and env.py_modules == (str(tmp_path / "pkg"), _uri())
    assert env.uris == [_uri()]
    raw["env_vars"]["A"] = "changed"  # the caller's dict is not shared
    assert env.env_vars["A"] == "1"
    with pytest.raises(TypeError):
        env.env_vars["B"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        env.working_dir = "x"  # type: ignore[misc]
    assert RuntimeEnv.parse(env) is env and not RuntimeEnv.parse(None) and env


@pytest.mark.parametrize(("raw", "error", "match"), [
    ([("env_vars", {})], TypeError, "must be a dict"),
    ({"conda": ["x"]}, ValueError, r"'conda' is not supported.*working_dir, py_modules, env_vars, pip, uv"),
    ({"env_vars": {"A": 1}}, TypeError, "env_vars must be a dict of str to str"),
    ({"py_modules": "/tmp"}, TypeError, "py_modules must be a list"),
    ({"working_dir": "/nonexistent/dir"}, ValueError, "not a directory"),
    ({"working_dir": "s3://bucket/x.zip"}, ValueError, "not supported"),
    ({"working_dir": "gcs://not-a-package.zip"}, ValueError, "not a package URI"),
    ({"py_modules": [3]}, TypeError, "entries must be paths or gcs:// URIs"),
])
def test_bad_input_names_the_key(raw, error, match) -> None:
    with pytest.raises(error, match=match):
        RuntimeEnv.parse(raw)


def test_the_cluster_side_takes_uris_only(tmp_path: Path) -> None:
    assert RuntimeEnv.parse({"working_dir": _uri()}, local_paths=False).working_dir == _uri()
    with pytest.raises(ValueError, match="expected a gcs:// URI.*uploads local directories"):
        RuntimeEnv.parse({"working_dir": str(tmp_path)}, local_paths=False)


def test_packing_zips_local_paths_once_by_content(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.py").write_text("print(1)\n")
    single = tmp_path / "single.py"
    single.write_text("X = 1\n")
    stored: dict[str, bytes] = {}
    env = RuntimeEnv.parse({"working_dir": str(work), "py_modules": [str(single), _uri()], "env_vars": {"A": "1"}})
    packed = env.packed(stored.__setitem__)
    assert packed.working_dir in stored and packed.py_modules[0] in stored and packed.py_modules[1] == _uri()
    assert packed.uris == [packed.working_dir, *packed.py_modules]
    assert env.packed(stored.__setitem__) == packed  # same content, same URIs
    assert json.loads(json.dumps(packed.to_dict())) == {
        "working_dir": packed.working_dir, "py_modules": list(packed.py_modules), "env_vars": {"A": "1"}}
    assert RuntimeEnv.parse(packed.to_dict(), local_paths=False) == packed


def test_pip_and_uv_in_rays_forms_become_one_value(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrequests==2.31  # http\n\nnumpy\n")
    from_file = RuntimeEnv.parse({"pip": str(requirements)})
    assert from_file.pip is not None and from_file.pip.packages == ("requests==2.31", "numpy")
    as_list = RuntimeEnv.parse({"pip": ["requests==2.31", "numpy"]})
    assert as_list == from_file and as_list.hash == from_file.hash and as_list
    as_dict = RuntimeEnv.parse({"pip": {"packages": str(requirements), "pip_check": True,
                                        "pip_install_options": ["--no-index"]}})
    assert as_dict.pip is not None and as_dict.pip.check and as_dict.pip.install_options == ("--no-index",)
    assert as_dict.hash != as_list.hash
    uv = RuntimeEnv.parse({"uv": {"packages": ["numpy"], "uv_pip_install_options": ["--offline"]}})
    assert uv.pip is not None and uv.pip.installer == "uv" and uv.hash != RuntimeEnv.parse({"pip": ["numpy"]}).hash
    for env in (from_file, as_dict, uv):  # travels as JSON and back unchanged
        assert RuntimeEnv.from_json(env.to_json()) == env
        assert RuntimeEnv.parse(env.to_dict(), local_paths=False) == env
    job = RuntimeEnv.parse({"pip": ["a"], "env_vars": {"A": "1"}})
    assert job.override(RuntimeEnv.parse({"env_vars": {"B": "2"}})).pip == job.pip
    assert job.override(uv).pip == uv.pip


@pytest.mark.parametrize(("raw", "error", "match"), [
    ({"pip": ["a"], "uv": ["a"]}, ValueError, "either 'pip' or 'uv', not both"),
    ({"pip": []}, ValueError, "list of packages is empty"),
    ({"pip": [3]}, TypeError, "pip packages must be a list of non-empty requirement strings"),
    ({"pip": 3}, TypeError, "requirements file path or a dict with 'packages'"),
    ({"pip": "/nonexistent/requirements.txt"}, ValueError, "cannot read requirements file"),
    ({"pip": {"pakages": ["a"]}}, ValueError, "pip key 'pakages' is not supported"),
    ({"pip": {"packages": ["a"], "pip_check": "yes"}}, TypeError, "pip_check must be a bool"),
    ({"pip": {"packages": ["a"], "pip_version": "==23.0"}}, ValueError, "pip_version is not supported"),
    ({"uv": {"packages": ["a"], "uv_pip_install_options": "--no-index"}}, TypeError,
     "uv_pip_install_options must be a list of str"),
])
def test_bad_pip_input_names_the_key(raw, error, match) -> None:
    with pytest.raises(error, match=match):
        RuntimeEnv.parse(raw)


def test_the_cluster_side_takes_no_requirements_file() -> None:
    with pytest.raises(ValueError, match="requirements file path; give the list of packages"):
        RuntimeEnv.parse({"pip": "requirements.txt"}, local_paths=False)
