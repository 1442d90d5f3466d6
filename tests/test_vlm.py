"""Image prompts: end to end on gemma3n-tiny with a tiny vision input, the
prompt layout, preprocessing, token counts at real resolutions, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import pytest
from click.testing import CliRunner

from mlxprof import decode as dec
from mlxprof import results, vlm
from mlxprof.cli import main
from mlxprof.models import MODELS
from mlxprof.models.synthetic import build_model, multimodal_layout

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "tests" / "fixtures" / "image.png"  # 64×48 RGB, generated with PIL


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mlxprof", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


# ------------------------------------------------------------------ end to end


def test_vlm_command_end_to_end(tmp_path):
    out = tmp_path / "vlm.json"
    p = run_cli("vlm", "-m", "gemma3n-tiny", "--image", str(IMAGE), "--image-size", "32",
                "--runs", "2", "--warmup", "1", "--tokens", "3", "--ttft-runs", "2", "--ttft-warmup", "1",
                "-q", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert "TTFT breakdown" in p.stdout and "text vs image" in p.stdout
    r = results.load(out, vlm.VLMResult)
    assert r.kind == "vlm"
    v = r.vision
    # 32×32 → stride-16 map 2×2, pooled to a 1×1 grid: one soft token
    assert (v.soft_tokens, v.grid, v.image_size, v.image_original) == (1, [1, 1], 32, [64, 48])
    assert v.vision_weights == "synthetic" and v.vision_build_s > 0 and v.vision_parameters > 290e6
    assert v.deviation and "1×1" in v.deviation
    lay = multimodal_layout(MODELS["gemma3n-tiny"].arch.vocab_size)
    assert v.token_ids == dict(boi=lay["boi"], image=lay["image"], eoi=lay["eoi"])
    # boi + soft tokens + eoi around the same text
    assert r.image.prompt_tokens == r.text.prompt_tokens + v.soft_tokens + 2 == v.prompt_tokens
    b = r.breakdown
    assert list(b.stages) == list(vlm.STAGES) and b.sequential
    assert (b.runs, b.warmup) == (2, 1)
    for name, s in b.stages.items():
        assert len(s.samples_s) == 2 and all(x > 0 for x in s.samples_s), name
        assert s.max_dev_s == max(abs(x - s.median_s) for x in s.samples_s)
    # the TTFT of a run is the sum of its stages (contiguous timestamps)
    for i, t in enumerate(b.ttft.samples_s):
        assert t == pytest.approx(sum(s.samples_s[i] for s in b.stages.values()), rel=1e-9)
    assert b.stages["vision"].share > b.stages["first_token"].share
    # interleaved decode runs from fresh caches; the image costs prefill (its
    # vision tower is ~1 GB of float32 weights streamed even at 32×32)
    assert len(r.text_runs) == len(r.image_runs) == 2
    assert all(x.prompt_tokens == v.prompt_tokens and len(x.token_ids) == 4 for x in r.image_runs)
    assert r.image.ttft_s.median > r.text.ttft_s.median
    assert r.image.tok_s.n == 2 and all(x > 0 for x in r.image.tok_s.samples)
    assert r.decode_comparison.baseline == "text" and r.decode_comparison.candidate == "image"
    # explicit counts: nothing reduced for the TTFT part
    assert not any("ttft" in x for x in r.settings.reduced)


def test_decode_with_image(tmp_path):
    out = tmp_path / "d.json"
    p = run_cli("decode", "-m", "gemma3n-tiny", "--image", str(IMAGE), "--image-size", "64",
                "--runs", "1", "--warmup", "1", "--tokens", "3", "--prompt-tokens", "8", "-q", "--json", str(out))
    assert p.returncode == 0, p.stderr
    r = results.load(out, dec.DecodeResult)
    # 64×64 → 2×2 grid: 4 soft tokens + boi + eoi + 8 text tokens
    assert r.settings.prompt_tokens == r.runs[0].prompt_tokens == 14
    assert (r.settings.image, r.settings.image_size) == (str(IMAGE), 64)
    assert any("4 soft tokens" in n for n in r.notes)
    assert r.runs[0].tok_s > 0 and len(r.runs[0].token_ids) == 4


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("cmd", ["vlm", "decode"])
def test_missing_image_is_one_line_exit_2(cmd, tmp_path):
    r = CliRunner().invoke(main, [cmd, "-m", "gemma3n-tiny", "--image", str(tmp_path / "nope.png")])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert lines == [f"mlxprof: error: --image {tmp_path / 'nope.png'}: no such file"]


@pytest.mark.parametrize("cmd", ["vlm", "decode"])
def test_not_an_image_is_one_line_exit_2(cmd, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("this is not a PNG\n")
    r = CliRunner().invoke(main, [cmd, "-m", "gemma3n-tiny", "--image", str(fake), "--json",
                                  str(tmp_path / "o.json")])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [f"mlxprof: error: --image {fake}: not an image PIL can read"]
    assert not (tmp_path / "o.json").exists()  # refused before measuring


def test_directory_and_bad_sizes_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["vlm", "-m", "gemma3n-tiny", "--image", str(tmp_path)])
    assert r.exit_code == 2 and "not a file" in r.output
    for size in ("16", "100", "640", "0"):
        r = CliRunner().invoke(main, ["vlm", "-m", "gemma3n-tiny", "--image", str(IMAGE), "--image-size", size])
        assert r.exit_code == 2 and "--image-size" in r.output, size
    r = CliRunner().invoke(main, ["decode", "-m", "gemma3n-tiny", "--image-size", "64"])
    assert r.exit_code == 2 and "--image-size needs --image" in r.output
    r = CliRunner().invoke(main, ["vlm", "-m", "gemma3n-tiny", "--image", str(IMAGE), "--ttft-runs", "0"])
    assert r.exit_code == 2 and "--ttft-runs" in r.output


# ------------------------------------------------------------------ pieces


def test_soft_tokens_at_real_resolutions():
    """MLX infers shapes while building the graph: at the checkpoint's 768 the
    tower gives the 16×16 = 256 features mlx-vlm's config expects, without
    evaluating anything (weights stay lazy)."""
    model = build_model(MODELS["gemma3n-tiny"], materialize=False)
    for size, grid in ((768, 16), (512, 16), (256, 8), (64, 2), (32, 1)):
        assert vlm.set_grid(model, size) == grid
        f = vlm.vision_features(model, mx.zeros((1, 3, size, size)))
        assert f.shape == (1, grid, grid, 2048), size
        assert vlm.project(model, f).shape == (1, grid * grid, 128)  # tiny text width
    assert model.config.vision_soft_tokens_per_image == 256


def test_prompt_layout_and_id_ranges():
    ids = dict(boi=7, image=9, eoi=8)
    assert vlm.image_prompt([1, 2, 3], ids, 3) == [7, 9, 9, 9, 8, 1, 2, 3]
    assert vlm.image_prompt([2, 5, 6], ids, 2, bos=2) == [2, 7, 9, 9, 8, 5, 6]
    real = multimodal_layout(262400)
    assert (real["boi"], real["image"], real["eoi"], real["vision_offset"]) == (255999, 262145, 262144, 262144)
    tiny = multimodal_layout(1024)
    assert tiny["vision_offset"] == 768 and tiny["image"] == 769 and tiny["audio_offset"] == 896
    cleaned = vlm.clean_text_ids(dec.default_prompt(64, 1024), tiny["vision_offset"])
    assert all(256 <= i < 768 for i in cleaned)
    model = build_model(MODELS["gemma3n-tiny"], materialize=False)
    assert model.config.image_token_id == 769 and model.embed_vision.vocab_offset == 768


def test_builtin_preprocessing_matches_gemma3n_config():
    import numpy as np
    from PIL import Image

    im = vlm.open_image(IMAGE)
    prep = vlm.builtin_prep(32)
    assert (prep.rescale_factor, prep.do_normalize, prep.resample) == (1 / 255, False, "bilinear")
    px = vlm.preprocess_builtin(im, prep)
    assert px.shape == (1, 3, 32, 32) and px.dtype == mx.float32
    assert 0.0 <= px.min().item() and px.max().item() <= 1.0
    # channel 0 is a left→right ramp in the fixture: resized, it still rises
    row = px[0, 0, 16]
    assert row[0].item() < row[-1].item()
    expect = mx.array(np.asarray(im.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32))
    assert mx.allclose(px[0].transpose(1, 2, 0), expect / 255).item()


def test_fixture_is_a_small_png():
    head = IMAGE.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n" and IMAGE.stat().st_size < 4096
    json.dumps(vlm.STAGE_HELP)  # the help travels in the JSON


def test_builtin_matches_the_checkpoint_processor():
    """With a checkpoint, mlxprof uses its own image processor; the built-in
    steps must give the same pixels as transformers' SigLIP processor set up
    with Gemma 3n's preprocessor_config.json."""
    transformers = pytest.importorskip("transformers")

    ip = transformers.SiglipImageProcessor(
        do_resize=True, size={"height": 768, "width": 768}, resample=2, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=False, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )

    class Loaded:
        processor = type("Processor", (), {"image_processor": ip})()

    im = vlm.open_image(IMAGE)
    run, prep = vlm.make_preprocessor(Loaded(), 64)
    assert prep.source.startswith("checkpoint image processor") and prep.resample == "bilinear"
    assert (prep.size, prep.do_normalize) == (64, False)
    a, b = run(im), vlm.preprocess_builtin(im, vlm.builtin_prep(64))
    assert a.shape == b.shape == (1, 3, 64, 64)
    assert mx.abs(a - b).max().item() < 1e-6
    assert vlm.make_preprocessor(Loaded(), None)[1].size == 768  # the checkpoint's own size


def test_cpu_defaults_are_reduced_and_said():
    chosen, reduced = vlm.plan("cpu")
    assert chosen == vlm.CPU_TTFT_DEFAULTS and len(reduced) == 1 and "ttft-runs 10→2" in reduced[0]
    chosen, reduced = vlm.plan("cuda")
    assert (chosen["ttft_runs"], chosen["ttft_warmup"], reduced) == (10, 10, [])  # seed 001's 10 after 10
    chosen, reduced = vlm.plan("cpu", 5, 0, 4)  # explicit flags win, nothing said
    assert (chosen, reduced) == (dict(ttft_runs=5, ttft_warmup=0, runs=4), [])
