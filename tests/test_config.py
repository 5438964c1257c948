"""Config loader: every error names the key and the file (or the variable) it came from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cryoet_ng.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    default_yaml,
    load_config,
    with_overrides,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    return str(info.value)


def test_default_config_loads_and_resolves_relative_paths() -> None:
    config = load_config(environ={})
    assert isinstance(config, Config)
    assert config.data_root.is_absolute()
    assert config.data_root == (DEFAULT_CONFIG_PATH.parent / "../sample-data").resolve()
    assert config.server.port == 8000 and config.selection.policy == "auto+author"
    assert config.out_root == config.data_root  # output_root null -> inside the tree


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "data_root: d\nserver:\n  prot: 9000\n")
    message = _error(path, environ={})
    assert str(path) in message and "'server.prot'" in message and "port" in message
    message = _error(_write(tmp_path, "data_root: d\ndata_rot: x\n"), environ={})
    assert "'data_rot'" in message


def test_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "data_root: d\nserver:\n  port: eighty\n")
    message = _error(path, environ={})
    assert str(path) in message and "'server.port'" in message and "integer" in message
    path = _write(tmp_path, "data_root: d\nprecompute:\n  rotation_tolerance: true\n")
    assert "'precompute.rotation_tolerance' must be a number" in _error(path, environ={})
    path = _write(tmp_path, "data_root: d\nserver: [1, 2]\n")
    assert "'server' must be a mapping" in _error(path, environ={})


def test_missing_data_root(tmp_path: Path) -> None:
    path = _write(tmp_path, "server:\n  port: 9000\n")
    message = _error(path, environ={})
    assert str(path) in message and "missing required key 'data_root'" in message


def test_bad_literal_lists_the_choices(tmp_path: Path) -> None:
    path = _write(tmp_path, "data_root: d\nselection:\n  policy: sometimes\n")
    message = _error(path, environ={})
    assert str(path) in message and "'selection.policy'" in message
    assert "'auto'" in message and "'sometimes'" in message


def test_environment_and_explicit_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "data_root: d\nserver:\n  port: 9000\n")
    env = {"CRYOET_NG__SERVER__PORT": "9100", "OTHER": "x"}
    assert load_config(path, environ=env).server.port == 9100
    # Explicit (CLI) overrides win over the environment.
    config = load_config(path, {"server.port": 9200, "data_root": "/abs"}, environ=env)
    assert config.server.port == 9200 and config.data_root == Path("/abs")
    # A None override means "not given".
    assert load_config(path, {"server.port": None}, environ={}).server.port == 9000
    # Values from the environment are YAML scalars: lists and nulls work.
    env = {"CRYOET_NG__SERVER__CORS_ORIGINS": "[https://a.org]", "CRYOET_NG__DATA_URL": "null"}
    config = load_config(path, environ=env)
    assert config.server.cors_origins == ("https://a.org",) and config.data_url is None
    # Relative paths are relative to the configuration file.
    assert load_config(path, environ={}).data_root == (tmp_path / "d").resolve()


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = _write(tmp_path, "data_root: d\n")
    message = _error(path, environ={"CRYOET_NG__SERVER__PORT": "ninety"})
    assert "'server.port'" in message and "integer" in message
    message = _error(path, environ={"CRYOET_NG__SERVER__HOST": "[unclosed"})
    assert "CRYOET_NG__SERVER__HOST" in message
    message = _error(path, environ={"CRYOET_NG__DATA_ROOT__X": "1"})
    assert "CRYOET_NG__DATA_ROOT__X" in message and "'data_root' is not a section" in message


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert str(missing) in _error(missing, environ={})
    assert "not valid YAML" in _error(_write(tmp_path, "a: [\n"), environ={})
    assert "top level must be a mapping" in _error(_write(tmp_path, "- 1\n"), environ={})


def test_shipped_default_is_generated_from_the_dataclasses() -> None:
    """The defaults live in the dataclasses only; the shipped file is their rendering."""
    regenerate = "stale: python -m cryoet_ng.config > cryoet_ng/default.yaml"
    assert DEFAULT_CONFIG_PATH.read_text() == default_yaml(), regenerate
    assert DEFAULT_CONFIG_PATH.parent.name == "cryoet_ng"  # package data, found when installed
    loaded = load_config(environ={})
    assert loaded.server.states_db == "../.states"  # one of the two shipped values
    server = dataclasses.replace(loaded.server, states_db="states")
    assert loaded.replace(server=server) == Config(data_root=loaded.data_root)


def test_command_line_overrides_are_validated_and_win(tmp_path: Path) -> None:
    path = _write(tmp_path, "data_root: d\nserver:\n  port: 9000\n")
    config = load_config(path, environ={"CRYOET_NG__SERVER__HOST": "0.0.0.0"})
    changed = with_overrides(config, {"server.port": 9300, "data_root": "/abs", "x": None})
    assert changed.server.port == 9300 and changed.data_root == Path("/abs")
    assert changed.server.host == "0.0.0.0" and changed.source == str(path)
    assert with_overrides(config, {"server.port": None}) is config
    with pytest.raises(ConfigError, match=r"'server\.port' must be an integer"):
        with_overrides(config, {"server.port": "ninety"})
    with pytest.raises(ConfigError, match=r"unknown key 'server\.prot'"):
        with_overrides(config, {"server.prot": 1})
