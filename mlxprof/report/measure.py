"""Run every measurement a document holds, saving each JSON result beside it.

Steps: decode, ops, floor (against the decode just measured), decode at
depth when asked (--depth), a sweep of
MLX_MAX_OPS_PER_BUFFER where the backend reads it, text vs image (vlm),
the bits comparison when asked (--bits), decode sharded over N ranks when asked
(--ranks, against one device), parity with the library's own loop. Each step is a
plain library call; its `command` (the CLI line that measures the same) is
spelled by `reproduce.mlxprof_command` from the same option values the call
gets. A step that fails is noted in the document and the others still run;
a failed decode is fatal, since every document is built around it.
"""

import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .. import results
from ..errors import InputError
from ..session import check_outputs
from .reproduce import mlxprof_command

# What a measuring report runs.
QUICK = dict(runs=3, warmup=4, tokens=24, prompt_tokens=8, rounds=None, budget=10, reps=2,
             sweep_values="default,1000")
# None: each command's own defaults, which shrink on a slow backend and say so. Two
# exceptions keep a warm report near 2 minutes on an H200 (gemma3n-e2b-4bit
# measured 219 s with them at the commands' defaults, parity 120 s and the sweep
# 42 s of it; 123 s with parity at 30 s and three sweep values): parity gets
# 20 s (mlxprof against the library's loop, target ×0.98, resolves at ±2-5 %;
# `mlxprof parity` keeps 120 s for ±0.5 %), the sweep three values of shorter points.
FULL = dict(runs=None, warmup=None, tokens=None, prompt_tokens=None, rounds=None, budget=20, reps=2,
            sweep_values="default,100,1000")
SWEEP_COUNTS = dict(runs=2, warmup=8, tokens=40)  # per sweep point, GPU backends only
QUICK_SWEEP_COUNTS = dict(runs=2, warmup=2, tokens=8)
OPS_KNOB = "MLX_MAX_OPS_PER_BUFFER"
ALL_STEPS = ["decode", "ops", "floor", "sweep", "vlm", "parity"]  # + "compare" with --bits
# The real-size vision tower takes minutes per pass on the CPU backend: skipped there unless --image.
SLOW_VISION_BYTES = 200 << 20


class Steps:
    """Runs steps by kind, saving each result as STEM.KIND.json; remembers
    what was measured (`docs`, `files`) and what was not (`failures`)."""

    def __init__(self, stem: Path, wanted: List[str], log: Callable):
        self.stem, self.wanted, self.log = stem, wanted, log
        check_outputs(*(self.path(k) for k in wanted))  # before any step: no saved result is replaced
        self.docs: Dict[str, dict] = {}
        self.files: Dict[str, str] = {}
        self.failures: List[str] = []

    def path(self, kind: str) -> str:
        return f"{self.stem}.{kind}.json"

    def run(self, kind: str, fn: Callable[[str], object]):
        if kind not in self.wanted:
            return
        self.log(f"[report] {kind} …")
        p = self.path(kind)
        t = time.perf_counter()
        try:
            r = fn(p)
        except KeyboardInterrupt:
            raise
        except InputError as e:
            self.failures.append(f"{kind}: {e}")
            return
        except Exception as e:  # keep what was measured; say what was not
            self.failures.append(f"{kind}: {type(e).__name__}: {e}")
            return
        finally:  # where a report's time goes (bench/time_to_profile.py prints these)
            self.log(f"[report] {kind}: {time.perf_counter() - t:.1f} s")
        if r is not None:
            results.save(r, p)
            self.docs[kind] = results.load_any(p)
            self.files[kind] = p

    def skip(self, kind: str, why: str):
        if kind in self.wanted:
            self.failures.append(why)


def measure(model: str, out: Path, quick: bool = False, weights: str = "auto", dtype: Optional[str] = None,
            gpu_timeline: bool = False, image: Optional[str] = None, progress: bool = True,
            steps: Optional[List[str]] = None, bits: Optional[str] = None, depth: Optional[str] = None,
            log=print, ranks: Optional[int] = None, parallel: Optional[str] = None) -> Dict[str, dict]:
    """Run every measurement a report holds; return {kind: result dict} plus
    `_failures` (steps not measured), `_files` (kind → JSON path) and
    `_command` (the report command itself)."""
    from .. import hardware, profile
    from ..models import resolve

    out = Path(out)
    results.check_writable(out)
    target = resolve(model, weights)  # bad model: one line, before anything runs
    if image is not None:
        if target.library != "mlx-vlm":
            raise InputError(f"--image: {model} is a text model ({target.library}); it has no vision tower")
        from ..vision_prep import open_image

        open_image(image)  # a missing or broken image: one line, before anything is measured
    if bits:
        from .. import compare as cmp_

        cmp_.parse_bits(bits, cmp_.family_of(model))
    if depth not in (None, "default"):
        from ..depth import parse_depths

        parse_depths(depth)
    c = QUICK if quick else FULL
    counts = dict(runs=c["runs"], warmup=c["warmup"], tokens=c["tokens"], prompt_tokens=c["prompt_tokens"])
    if ranks is not None or parallel is not None:
        _check_distributed(model, weights, ranks, parallel, counts)
    chip = hardware.detect()
    st = Steps(out.with_suffix(""), steps or ALL_STEPS + (["compare"] if bits else []) + (["depth"] if depth else [])
               + (["distributed"] if ranks else []), log)
    # weights/dtype as the library gets them; `who` as the command line spells them (auto is the default)
    lib = dict(weights=weights, dtype=dtype)
    who = dict(model=model, weights=None if weights == "auto" else weights, dtype=dtype)

    if chip.backend == "cuda" and "decode" in st.wanted:
        try:
            vlm_image = _vlm_image(st.path("vlm"), image) if "vlm" in st.wanted and target.library == "mlx-vlm" \
                else None
            _kernels_ahead(model, lib, c, vlm_image, progress, log)
        except Exception as e:  # only a head start: each step still compiles what it needs
            log(f"[report] compiling GPU kernels ahead failed ({type(e).__name__}: {e}); each step compiles its own")
    st.run("decode", lambda p: profile.decode(
        model, **lib, **counts, progress=progress, gpu_timeline=gpu_timeline,
        command=mlxprof_command("decode", **who, **counts, gpu_timeline=gpu_timeline, json=p)))
    st.run("ops", lambda p: _ops_step(model, lib, who, p))
    st.run("floor", lambda p: _floor_step(model, lib, who, p, st.files.get("decode")))
    st.run("depth", lambda p: _depth_step(model, lib, who, p, depth, c, progress))
    if chip.backend == "cpu":
        st.skip("sweep", f"sweep skipped: the CPU backend does not read {OPS_KNOB}")
    else:
        st.run("sweep", lambda p: _sweep_step(model, lib, who, p, c, quick, progress))
    slow_vision = chip.backend == "cpu" and st.docs.get("decode", {}).get("model", {}).get("bytes_per_token", 0) \
        > SLOW_VISION_BYTES
    if target.library != "mlx-vlm":
        st.skip("vlm", f"vlm skipped: {model} is a text model ({target.library}), no image prompts")
    elif slow_vision and image is None:
        st.skip("vlm", "vlm skipped: the real-size vision tower takes minutes per pass on the CPU backend; "
                       "pass --image to include it, or run `mlxprof vlm` separately")
    else:
        st.run("vlm", lambda p: _vlm_step(model, lib, who, p, c, st.docs, image=image, quick=quick))
    if bits:
        st.run("compare", lambda p: _compare_step(model, lib, who, p, bits, counts, progress))
    if ranks:
        st.run("distributed", lambda p: _distributed_step(model, lib, who, p, ranks, parallel, counts,
                                                          gpu_timeline, progress))
    parity_counts = dict(rounds=c["rounds"], budget=c["budget"], warmup=c["warmup"], tokens=c["tokens"],
                         prompt_tokens=c["prompt_tokens"])
    from .. import parity

    st.run("parity", lambda p: parity.parity(
        model, **lib, **parity_counts, progress=progress,
        command=mlxprof_command("parity", **who, **parity_counts, json=p)))
    if "decode" not in st.docs:
        raise InputError("report: the decode measurement failed: " + "; ".join(st.failures))
    return {**st.docs, "_failures": st.failures, "_files": st.files,
            "_command": mlxprof_command("report", **who, quick=quick, gpu_timeline=gpu_timeline, image=image,
                                        bits=bits, depth=depth, ranks=ranks, parallel=parallel, out=out)}


def _ops_step(model, lib, who, path):
    from .. import ops

    return ops.run(model, **lib, command=mlxprof_command("ops", **who, json=path))


def _floor_step(model, lib, who, path, decode_path):
    """The floor against the decode just measured (no second decode)."""
    from .. import floor

    return floor.run(model, **lib, decode_path=decode_path, no_decode=decode_path is None,
                     command=mlxprof_command("floor", **who, decode=decode_path, no_decode=decode_path is None,
                                             json=path))


def _depth_step(model, lib, who, path, depth, c, progress):
    from .. import depth as dp

    counts = dict(runs=c["runs"], warmup=c["warmup"], tokens=c["tokens"])
    return dp.decode_at_depth(model, depth, **lib, **counts, progress=progress,
                              command=mlxprof_command("decode", **who, depth=depth, **counts, json=path))


def _sweep_step(model, lib, who, path, c, quick, progress):
    from .. import sweep

    values = c["sweep_values"]
    opts = dict(reps=c["reps"], prompt_tokens=c["prompt_tokens"], **(QUICK_SWEEP_COUNTS if quick else SWEEP_COUNTS))
    return sweep.run(model, OPS_KNOB, values.split(","), **lib, **opts, json_path=path, progress=progress,
                     command=mlxprof_command("sweep", **who, knob=f"{OPS_KNOB}={values}", **opts, json=path))


def _kernels_ahead(model, lib, c, vlm_image, progress, log):
    """CUDA, on a machine missing some of them: the kernels of the decode (and
    of the vlm step's image prompt) compiled before the first step, several at
    once (precompile.py), instead of one after another inside the decode and
    vlm steps; the other steps then find them cached. It opens the model once
    more; when everything is cached it does nothing else."""
    from .. import decode as dec
    from .. import precompile
    from ..progress import Progress
    from ..session import open_session

    s = open_session(model, **lib)
    text = s.prompt(s.plan(prompt_tokens=c["prompt_tokens"]).prompt_tokens)
    ms, passes = [len(text), 1], [lambda: dec.run_once(s.model, text, 0, 2)]
    if not precompile.needed(s.model, s.backend, ms):
        return
    log("[report] kernels … (compiling GPU kernels not cached yet, several at once)")
    t = time.perf_counter()
    with Progress(progress, None, "compiling GPU kernels") as bar:
        if vlm_image is None:
            precompile.prepare(s.model, s.backend, ms, passes, bar)
        else:
            from ..vlm import Vision, compile_kernels

            compile_kernels(Vision(s.model, vlm_image, None, text), s.backend, bar, ms, passes)
    log(f"[report] kernels: {time.perf_counter() - t:.1f} s")


def _vlm_image(path, image):
    """The vlm step's image: `image`, else a generated test card beside its result
    (no downloads, the same every time)."""
    if image is None:
        image = str(Path(path).with_suffix("").with_suffix(".image.png"))
        if not Path(image).exists():
            _test_card(image)
    return image


def _vlm_step(model, lib, who, path, c, docs, image=None, quick=False):
    from .. import profile

    image = _vlm_image(path, image)
    tiny = docs.get("decode", {}).get("model", {}).get("alias", "").startswith("gemma3n-tiny")
    opts = dict(image_size=64 if quick and tiny else None)
    if quick:
        opts.update(runs=2, warmup=c["warmup"], tokens=c["tokens"], ttft_runs=3, ttft_warmup=1,
                    prompt_tokens=c["prompt_tokens"])
    return profile.vlm(model, image, **lib, **opts,
                       command=mlxprof_command("vlm", **who, image=image, **opts, json=path))


def _compare_step(model, lib, who, path, bits, counts, progress):
    from .. import compare as cmp_

    family = cmp_.family_of(model)
    return cmp_.run(family, bits=bits, **lib, **counts, progress=progress,
                    command=mlxprof_command("compare", **{**who, "model": family}, bits=bits, **counts, json=path))


def _check_distributed(model, weights, ranks, parallel, counts):
    """--ranks / --parallel: refused before anything is measured when the model cannot be split so."""
    from ..distributed.drive import check_inputs, check_model

    if ranks is None:
        raise InputError("--parallel needs --ranks N")
    check_inputs(ranks, parallel or "tensor", counts, ())
    check_model(model, weights, parallel or "tensor", ranks, counts)


def _distributed_step(model, lib, who, path, ranks, parallel, counts, gpu_timeline, progress):
    """`mlxprof decode --ranks N`: the ranks run in their own processes, after this one lets go of
    the memory its own measurements cached."""
    import mlx.core as mx

    from .. import distributed

    mx.clear_cache()
    parallel = parallel or "tensor"
    return distributed.decode(model, ranks=ranks, parallel=parallel, **lib, **counts, gpu_timeline=gpu_timeline,
                              progress=progress,
                              command=mlxprof_command("decode", **who, **counts, ranks=ranks, parallel=parallel,
                                                      gpu_timeline=gpu_timeline, json=path))


def _test_card(path):
    from PIL import Image

    img = Image.new("RGB", (256, 256))
    img.putdata([(x, y, (x * y) % 256) for y in range(256) for x in range(256)])
    img.save(path)
