"""Image prompts beyond Gemma 3n: a tiny Gemma 3 (SigLIP + projector) with the
full TTFT breakdown, a tiny Qwen2.5-VL with the fused TTFT and its note, and
one-line refusals (text models, sizes, families without preprocessing)."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import pytest
from click.testing import CliRunner

from mlxprof import results, vision_families as vf, vision_prep as vp, vlm
from mlxprof.cli import main
from mlxprof.models.synthetic import build_model, materialize_vision, vision_modules

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "tests" / "fixtures" / "image.png"  # 64×48 RGB
sys.path.insert(0, str(ROOT / "tests"))
from tiny_checkpoints import _BASE, CONFIGS  # noqa: E402

GEMMA3 = CONFIGS["gemma3"]  # SigLIP 28×28, 14-pixel patches, 4 soft tokens
QWEN = {"model_type": "qwen2_5_vl", **_BASE, "image_token_id": 250, "video_token_id": 251,
        "vision_start_token_id": 252, "vision_end_token_id": 253, "vision_token_id": 254,
        "tie_word_embeddings": True, "rope_scaling": {"type": "mrope", "mrope_section": [4, 2, 2]},
        "vision_config": {"model_type": "qwen2_5_vl", "depth": 1, "hidden_size": 32, "intermediate_size": 64,
                          "out_hidden_size": 64, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2,
                          "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [0]}}
COUNTS = ["--runs", "2", "--warmup", "1", "--tokens", "3", "--ttft-runs", "2", "--ttft-warmup", "1"]


def write_config(tmp_path, config, name):
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(config))
    return p


def run_vlm(config_path, out, *extra):
    p = subprocess.run([sys.executable, "-m", "mlxprof", "vlm", "--config", str(config_path), "--image",
                        str(IMAGE), *COUNTS, *extra, "-q", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p, results.load(out, vlm.VLMResult)


def test_gemma3_full_breakdown(tmp_path):
    p, r = run_vlm(write_config(tmp_path, GEMMA3, "gemma3"), tmp_path / "g.json", "--image-size", "28")
    assert "TTFT breakdown" in p.stdout and "SigLIP" in p.stdout
    b, v = r.breakdown, r.vision
    assert list(b.stages) == list(vlm.STAGES) and b.sequential and b.note is None
    assert "SigLIP" in b.help["vision"] and "multi_modal_projector" in b.help["project"]
    for name, s in b.stages.items():
        assert len(s.samples_s) == 2 and all(x > 0 for x in s.samples_s), name
    for i, t in enumerate(b.ttft.samples_s):
        assert t == pytest.approx(sum(s.samples_s[i] for s in b.stages.values()), rel=1e-9)
    # 28×28 / 14 → 2×2 patches, pooled to mm_tokens_per_image = 4
    assert (v.soft_tokens, v.grid, v.image_size) == (4, [2, 2], 28)
    assert v.token_ids == dict(boi=251, image=250, eoi=252)
    assert v.prep.do_normalize and v.prep.source.startswith("built-in (Gemma 3")
    assert r.image.prompt_tokens == r.text.prompt_tokens + 4 + 2 == v.prompt_tokens
    assert v.vision_weights == "synthetic" and v.vision_parameters > 0
    # the JSON round trip keeps every field
    again = vlm.VLMResult.model_validate_json(r.model_dump_json())
    assert again.breakdown == b and again.vision == v


def test_other_family_total_ttft_and_note(tmp_path):
    p, r = run_vlm(write_config(tmp_path, QWEN, "qwen"), tmp_path / "q.json", "--image-size", "56")
    b, v = r.breakdown, r.vision
    assert b.stages == {} and not b.sequential
    assert b.note == "TTFT breakdown not available for qwen2_5_vl" and b.note in r.notes
    assert "TTFT breakdown not available for qwen2_5_vl" in p.stdout
    assert len(b.ttft.samples_s) == 2 and all(x > 0 for x in b.ttft.samples_s)
    # 56×56 / 14 → 4×4 patches, merged 2×2: 4 image tokens between vision start/end
    assert (v.soft_tokens, v.grid) == (4, [2, 2])
    assert r.image.prompt_tokens == r.text.prompt_tokens + 6
    assert all(x.tok_s > 0 for x in r.image_runs)


@pytest.mark.parametrize("args, words", [
    (["--config", "{llama}"], "has no vision tower"),
    (["--config", "{gemma3}", "--image-size", "56"], "takes 28×28 only"),
    (["--config", "{qwen}", "--image-size", "50"], "multiple of 28"),
    (["--config", "{llava}"], "needs its checkpoint's processor files"),
])
def test_refusals_are_one_line(tmp_path, args, words):
    llava = {"model_type": "llava", "text_config": {"model_type": "llama", **_BASE}, "vision_config": {}}
    paths = {k: write_config(tmp_path, c, k) for k, c in
             (("llama", CONFIGS["llama"]), ("gemma3", GEMMA3), ("qwen", QWEN), ("llava", llava))}
    args = [a.format(**paths) for a in args]
    r = CliRunner().invoke(main, ["vlm", *args, "--image", str(IMAGE), "--json", str(tmp_path / "o.json")])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and words in lines[0], r.output
    assert not (tmp_path / "o.json").exists()
    r = CliRunner().invoke(main, ["decode", *args, "--image", str(IMAGE)])
    assert r.exit_code == 2 and words in r.output


def test_staged_gemma3_matches_mlx_vlm_embeddings():
    """The stage functions compose to what mlx-vlm's own get_input_embeddings
    gives from pixel values (vision tower and projector inside it)."""
    model = build_model(GEMMA3, dtype=mx.float32)
    materialize_vision(model, mx.float32)

    class Loaded:
        target = type("T", (), {"config": GEMMA3, "weights": "synthetic"})()
        processor = None

    Loaded.model = model
    fam = vf.Gemma3(Loaded(), vp.open_image(IMAGE), None, list(range(1, 9)))
    ids = mx.array([fam.ids])
    px = fam.preprocess(fam.image)
    ours = fam.embed(ids, model.multi_modal_projector(fam.tower(px)))
    theirs = model.get_input_embeddings(ids, px, mask=mx.ones(ids.shape)).inputs_embeds
    assert mx.isfinite(ours).all().item() and mx.allclose(ours, theirs).item()
    logits = model.language_model(inputs=ids, inputs_embeds=ours).logits
    assert mx.isfinite(logits).all().item()


def test_synthetic_vision_weights_cover_every_non_language_module():
    for config, names in ((GEMMA3, {"vision_tower", "multi_modal_projector"}), (QWEN, {"vision_tower"})):
        model = build_model(config, dtype=mx.float32)
        assert {n for n, _ in vision_modules(model)} == names
        n = materialize_vision(model, mx.float32)
        from mlx.utils import tree_flatten

        params = [p for _, m in vision_modules(model) for _, p in tree_flatten(m.parameters())]
        assert n == sum(p.size for p in params if mx.issubdtype(p.dtype, mx.floating))
        assert all(mx.isfinite(p).all().item() for p in params if mx.issubdtype(p.dtype, mx.floating))


def test_builtin_preprocessing_matches_transformers():
    """Gemma 3's and Qwen2-VL's built-in steps give the pixels of transformers'
    own image processors set up with the published preprocessor configs."""
    transformers = pytest.importorskip("transformers")
    im = vp.open_image(IMAGE)
    ip = transformers.Gemma3ImageProcessor(size={"height": 28, "width": 28}, resample=2, do_normalize=True,
                                           image_mean=[0.5] * 3, image_std=[0.5] * 3)
    a = mx.array(ip(images=[im], return_tensors="np")["pixel_values"])
    b = vp.preprocess_builtin(im, vp.builtin_prep(28, "Gemma 3", vp.GEMMA3_PREP))
    assert a.shape == b.shape == (1, 3, 28, 28) and mx.abs(a - b).max().item() < 1e-5
    ip = transformers.Qwen2VLImageProcessor(image_mean=vp.QWEN2VL_PREP["image_mean"],
                                            image_std=vp.QWEN2VL_PREP["image_std"])
    out = ip(images=[im], return_tensors="np")
    h, w = vp.smart_resize(im.height, im.width)
    px, thw = vp.qwen_patches(im, vp.builtin_prep(h, "Qwen2.5-VL", vp.QWEN2VL_PREP), 14, 2, 2)
    assert thw.tolist() == out["image_grid_thw"].tolist() == [[1, h // 14, w // 14]]
    assert mx.abs(px - mx.array(out["pixel_values"])).max().item() < 1e-5
