import json

import pytest
from click.testing import CliRunner

from mlxprof import hardware
from mlxprof.cli import main
from mlxprof.gating import EnvResult
from mlxprof.results import SCHEMA_VERSION

from recorded_chips import CHIPS


@pytest.fixture(autouse=True)
def no_user_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MLXPROF_GATING_FILE", str(tmp_path / "absent.json"))
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns otherwise
    for k in hardware.KNOBS:
        monkeypatch.delenv(k, raising=False)


def fake_chip(monkeypatch, key):
    backend, info = CHIPS[key]
    real = hardware.detect
    monkeypatch.setattr(hardware, "detect", lambda *a, **kw: real(device_info=info, backend=backend))


def invoke(*args):
    r = CliRunner().invoke(main, ["env", *args])
    return r


def test_env_json_this_machine():
    r = invoke("--json", "-")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["schema"] == SCHEMA_VERSION and data["kind"] == "env"
    res = EnvResult.model_validate(data)
    chip = hardware.detect()
    assert res.chip.family == chip.family and res.provenance.backend == chip.backend
    assert res.provenance.chip == chip.label
    assert {k.knob for k in res.knobs} == set(hardware.KNOBS)
    assert res.provenance.versions["mlx"] and res.recommendations


def test_env_json_m1_ultra_with_user_knob(monkeypatch):
    fake_chip(monkeypatch, "m1-ultra")
    monkeypatch.setenv("MLX_MAX_MB_PER_BUFFER", "200")
    res = EnvResult.model_validate(json.loads(invoke("--json", "-").output))
    assert res.chip.family == "apple-m1" and res.chip.chip_class == "d" and res.chip.generation == 13
    assert res.provenance.chip == "Apple M1 Ultra [applegpu_g13d]"
    knobs = {k.knob: k for k in res.knobs}
    assert knobs["MLX_MAX_OPS_PER_BUFFER"].in_force == "50"
    assert (knobs["MLX_MAX_MB_PER_BUFFER"].env, knobs["MLX_MAX_MB_PER_BUFFER"].in_force) == ("200", "200")
    assert res.provenance.knobs == {"MLX_MAX_MB_PER_BUFFER": "200"}
    recs = {r.knob: r for r in res.recommendations}
    assert recs["MLX_MAX_OPS_PER_BUFFER"].value == "1000"


def test_env_table_h200(monkeypatch):
    fake_chip(monkeypatch, "h200")
    r = invoke()
    assert r.exit_code == 0, r.output
    out = r.output
    for s in ("NVIDIA H200", "cuda-sm90", "compute capability 9.0 (sm_90, Hopper)", "MLX_CUDA_GRAPH_CACHE_SIZE",
              "400", "leave default", "H200", "mlx-vlm"):
        assert s in out, s


def test_env_table_cpu_says_not_read(monkeypatch):
    fake_chip(monkeypatch, "cpu")
    out = invoke().output
    assert "not read" in out and "does not read" in out and "family cpu" in out


def test_env_gating_file_option(tmp_path, monkeypatch):
    fake_chip(monkeypatch, "m5-max")
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"rules": [{"family": "apple-m5", "knob": "MLX_MAX_OPS_PER_BUFFER", "value": 300,
                                        "reason": "my sweep says so"}]}))
    res = EnvResult.model_validate(json.loads(invoke("--json", "-", "--gating-file", str(f)).output))
    rec = {r.knob: r for r in res.recommendations}["MLX_MAX_OPS_PER_BUFFER"]
    assert (rec.value, rec.origin, res.gating_file) == ("300", str(f), str(f))
    assert "my sweep says so" in invoke("--gating-file", str(f)).output


def test_env_bad_gating_file_exit_2(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{oops")
    r = invoke("--gating-file", str(f))
    assert r.exit_code == 2 and "mlxprof: error: gating file" in r.output
    r = invoke("--gating-file", str(tmp_path / "missing.json"))
    assert r.exit_code == 2 and "no such file" in r.output
