"""Result files: round trips, atomic rewrites, schema versions and kinds."""

import json
import os

import pytest

from mlxprof import results
from mlxprof.errors import InputError, OutputError
from mlxprof.gating import EnvResult, environment


@pytest.fixture()
def env_result(tmp_path, monkeypatch):
    monkeypatch.setenv("MLXPROF_GATING_FILE", str(tmp_path / "absent.json"))
    return environment(command="mlxprof env --json x.json")


def test_save_load_round_trip(tmp_path, env_result):
    path = tmp_path / "env.json"
    results.save(env_result, path)
    data = json.loads(path.read_text())
    assert data["schema"] == results.SCHEMA_VERSION and data["kind"] == "env"
    assert results.load(path, EnvResult) == env_result
    assert results.load_any(path)["provenance"]["command"] == "mlxprof env --json x.json"


def test_a_failed_rewrite_keeps_the_previous_file_and_leaves_no_temp(tmp_path, env_result, monkeypatch):
    path = tmp_path / "env.json"
    results.save(env_result, path)
    before = path.read_text()

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="No space left on device; the result was kept in") as e:
        results.save(env_result, path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["env.json"]
    kept = str(e.value).split("kept in ")[1]
    assert json.loads(open(kept).read())["kind"] == "env"
    os.unlink(kept)


def test_written_files_are_readable_by_others(tmp_path, env_result):
    path = tmp_path / "env.json"
    umask = os.umask(0o022)
    try:
        results.save(env_result, path)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("text, message", [
    ("{not json", "not a JSON result"),
    ("[1, 2]", "not an mlxprof result"),
    ('{"schema": 99, "kind": "env"}', "schema version 99"),
])
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        results.load_any(path)


def test_missing_file_and_wrong_kind(tmp_path, env_result):
    with pytest.raises(InputError, match="no such file"):
        results.load_any(tmp_path / "absent.json")
    path = tmp_path / "env.json"
    results.save(env_result, path)
    from mlxprof.decode import DecodeResult

    with pytest.raises(InputError, match="a 'env' result, expected 'decode'"):
        results.load(path, DecodeResult)


def test_invalid_fields_name_the_kind(tmp_path, env_result):
    path = tmp_path / "env.json"
    data = json.loads(env_result.model_dump_json(by_alias=True))
    data["provenance"]["backend"] = 5
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="invalid env result"):
        results.load(path, EnvResult)


def test_check_writable_refuses_before_work(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        results.check_writable(tmp_path)
    assert results.check_writable(tmp_path / "new" / "x.json") == tmp_path / "new" / "x.json"
    assert (tmp_path / "new").is_dir()
