import json
import warnings

import pytest

from mlxprof import gating
from mlxprof.errors import InputError
from mlxprof.hardware import MB, OPS, detect

from recorded_chips import CHIPS


@pytest.fixture(autouse=True)
def no_user_file(tmp_path, monkeypatch):
    # Never read the developer's own ~/.config/mlxprof/gating.json.
    monkeypatch.setenv("MLXPROF_GATING_FILE", str(tmp_path / "absent.json"))


def chip(key):
    backend, info = CHIPS[key]
    return detect(device_info=info, backend=backend)


def by_knob(recs):
    return {r.knob: r for r in recs}


# key: MLX_MAX_OPS_PER_BUFFER recommendation (None = leave default), a word of its reason
EXPECT = {
    "m1-ultra": ("1000", "M1 Ultra"),
    "m3-max": ("1000", "M1 Ultra"),
    "m4": ("1000", "M1 Ultra"),
    "m4-pro": ("1000", "M1 Ultra"),
    "m5-max": (None, "M5 Max"),
    "future-g18": (None, "M5 Max"),
    "iphone": (None, "no measurement"),
    "h100": (None, "H200"),
    "h200": (None, "H200"),
    "a100": (None, "no measurement"),
    "l4": (None, "no measurement"),
    "dgx-spark": (None, "no measurement"),
    "cpu": (None, "does not read"),
}


@pytest.mark.parametrize("key", sorted(EXPECT))
def test_recommend_every_recorded_chip(key):
    value, word = EXPECT[key]
    c = chip(key)
    recs = by_knob(gating.recommend(c))
    r = recs[OPS]
    assert (r.family, r.value, r.origin) == (c.family, value, "built-in")
    assert word in r.reason
    if value is not None:
        p = r.provenance
        assert p["date"] == "2026-06-17" and p["mlx"] == "0.31.2" and "+11–13 %" in p["gain"]
        assert r.default == (50 if c.chip_class in ("s", "d") else 40)
        assert recs[MB].value is None and "prefill peak memory" in recs[MB].reason
    if key == "cpu":
        assert not r.read and r.default is None and recs[MB].read is False


def test_apply_sets_only_what_the_user_has_not_set():
    env = {MB: "77"}
    acts = {a.knob: a for a in gating.apply(chip("m3-max"), environ=env, device_created=False)}
    assert env[OPS] == "1000" and acts[OPS].action == "set"
    assert env[MB] == "77" and acts[MB].action == "kept"  # recommended "leave default"; user's value stays
    env = {OPS: "64"}
    acts = {a.knob: a for a in gating.apply(chip("m1-ultra"), environ=env, device_created=False)}
    assert env[OPS] == "64" and acts[OPS].action == "kept" and "recommended: 1000" in acts[OPS].reason


def test_apply_leaves_defaults_alone():
    for key in ("m5-max", "h200", "cpu", "dgx-spark"):
        env = {}
        acts = gating.apply(chip(key), environ=env, device_created=False)
        assert env == {} and {a.action for a in acts} == {"default"}


def test_apply_too_late_warns_and_sets_nothing():
    env = {}
    with pytest.warns(RuntimeWarning, match="too late to set MLX_MAX_OPS_PER_BUFFER"):
        acts = gating.apply(chip("m1-ultra"), environ=env, device_created=True)
    assert env == {} and {a.knob: a.action for a in acts}[OPS] == "late"
    # Nothing to set → nothing to warn about.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gating.apply(chip("m5-max"), environ={}, device_created=True)


def test_apply_in_this_process_detects_late_call(monkeypatch):
    import os

    import mlx.core  # noqa: F401  (this process's device now exists)

    monkeypatch.delenv(OPS, raising=False)
    with pytest.warns(RuntimeWarning):
        acts = gating.apply(chip("m1-ultra"))
    assert OPS not in os.environ and acts[0].action == "late"
    # A child process's environment is not "late".
    env = {}
    gating.apply(chip("m1-ultra"), environ=env)
    assert env[OPS] == "1000"


def test_user_file_merges_over_builtin(tmp_path):
    f = tmp_path / "g.json"
    f.write_text(json.dumps({"mlxprof_gating": 1, "rules": [
        {"family": "apple-m5", "knob": OPS, "value": 200, "reason": "measured here",
         "provenance": {"source": "my sweep", "date": "2026-11-01"}},
        {"family": "apple-m5", "knob": MB, "value": "100", "reason": "measured here too"},
    ]}))
    recs = by_knob(gating.recommend(chip("m5-max"), gating_file=f))
    assert recs[OPS].value == "200" and recs[OPS].origin == str(f) and recs[MB].value == "100"
    # Other families keep the built-in rules.
    assert by_knob(gating.recommend(chip("m1-ultra"), gating_file=f))[OPS].origin == "built-in"
    env = {}
    gating.apply(chip("m5-max"), environ=env, gating_file=f, device_created=False)
    assert env == {OPS: "200", MB: "100"}


def test_save_decision_round_trip(tmp_path, monkeypatch):
    f = tmp_path / "sub" / "gating.json"  # directory created on demand
    c = chip("m4-pro")
    prov = {"source": "mlxprof sweep", "gain": "+9.8 %", "date": "2026-11-21", "runs": 6}
    assert gating.save_decision(c, OPS, 500, prov, f) == f
    gating.save_decision(c, MB, None, {"source": "mlxprof sweep"}, f)
    gating.save_decision(c, OPS, 700, prov, f)  # replaces the first OPS decision
    doc = json.loads(f.read_text())
    assert doc["mlxprof_gating"] == 1 and len(doc["rules"]) == 2
    recs = by_knob(gating.recommend(c, gating_file=f))
    assert recs[OPS].value == "700" and recs[OPS].provenance["runs"] == 6
    assert recs[OPS].provenance["chip"] == c.label and "+9.8 %" in recs[OPS].reason
    assert recs[MB].value is None and recs[MB].origin == str(f)
    # Other M4 chips (same family) now follow it; M3 does not.
    assert by_knob(gating.recommend(chip("m4"), gating_file=f))[OPS].value == "700"
    assert by_knob(gating.recommend(chip("m3-max"), gating_file=f))[OPS].value == "1000"
    # Through the environment variable, no explicit path.
    monkeypatch.setenv("MLXPROF_GATING_FILE", str(f))
    assert by_knob(gating.recommend(c))[OPS].value == "700"


@pytest.mark.parametrize("text, msg", [
    ("{not json", "not JSON"),
    ("[1, 2]", "'rules' list"),
    ('{"mlxprof_gating": 2, "rules": []}', "version 2"),
    ('{"rules": [{"family": "cpu", "knob": "OMP_NUM_THREADS", "reason": "x"}]}', "not an MLX_"),
    ('{"rules": [{"family": "cpu", "knob": "MLX_MAX_OPS_PER_BUFFER"}]}', "reason"),
    ('{"rules": [{"family": "cpu", "knob": "MLX_MAX_OPS_PER_BUFFER", "reason": "x", "value": [1]}]}', "value"),
])
def test_bad_gating_file(tmp_path, text, msg):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(InputError, match=msg):
        gating.recommend(chip("m1-ultra"), gating_file=f)
    with pytest.raises(InputError):  # never overwrite a file we cannot read
        gating.save_decision(chip("m1-ultra"), OPS, 1000, {}, f)
    assert f.read_text() == text


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        gating.recommend(chip("m1-ultra"), gating_file=tmp_path / "nope.json")
    # ...but an absent $MLXPROF_GATING_FILE just holds no decisions yet (fixture).
    assert by_knob(gating.recommend(chip("m1-ultra")))[OPS].value == "1000"


def test_save_decision_rejects_bad_knob(tmp_path):
    with pytest.raises(InputError, match="MLX_"):
        gating.save_decision(chip("m1-ultra"), "FOO", 1, {}, tmp_path / "g.json")
    assert not (tmp_path / "g.json").exists()


def test_apply_without_chip_probes_and_keeps_mlx_unimported(tmp_path):
    # The notebook flow: apply() first, then import mlx. The chip is probed in a
    # subprocess, so this process's device is not created by the detection.
    import subprocess
    import sys

    f = tmp_path / "g.json"
    this = detect()
    gating.save_decision(this, OPS, 123, {"source": "test"}, f)
    code = ("import os, sys; from mlxprof import gating; acts = gating.apply(); "
            "print('mlx.core' in sys.modules, os.environ.get('MLX_MAX_OPS_PER_BUFFER'), acts[0].action)")
    env = {k: v for k, v in __import__("os").environ.items() if k != OPS}
    env["MLXPROF_GATING_FILE"] = str(f)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "123", "set"]
