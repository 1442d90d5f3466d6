# %% [markdown]
# # Sweeping an MLX knob from a notebook
#
# `mlxprof.sweep.run` runs every point in a fresh worker process (MLX reads its
# buffer knobs once, when the device is created), interleaves the values over
# `reps` rounds, and compares each value's tok/s with the default: speedup,
# bootstrap 95 % CI, Mann-Whitney p and a verdict. A ratio inside the noise is
# never called a gain.
#
# Open this file in Jupyter/VS Code as a percent-cell notebook, or run it as a
# script: `python examples/sweep_notebook.py`. It uses the tiny test
# architecture so it finishes in seconds on a CPU; on a Mac use
# `gemma3n-e2b-4bit` and the buffer knob instead.

# %%
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent) if "__file__" in globals() else "..")

from mlxprof import hardware, sweep

chip = hardware.detect()
print(chip.backend, chip.name)

# %% [markdown]
# On Metal or CUDA, sweep the ops-per-buffer knob; on the CPU backend it has no
# effect (the CPU build does not read it), so sweep `MLX_DISABLE_COMPILE`, which
# every backend reads.

# %%
if chip.backend == "cpu":
    knob, values = "MLX_DISABLE_COMPILE", ["default", 1]
else:
    knob, values = "MLX_MAX_OPS_PER_BUFFER", ["default", 50, 100, 200, 1000, 2000]

r = sweep.run(model="gemma3n-tiny", knob=knob, values=values, reps=3,
              runs=2, warmup=4, tokens=16, progress=True)
r  # a notebook shows the table (markdown/HTML); rich's print shows it in a terminal

# %%
from rich import print as rprint

rprint(r)

# %% [markdown]
# The rows as plain dicts (e.g. for pandas: `pd.DataFrame(r.table())`), and the
# recommended value: the best significant gain, or the default.

# %%
for row in r.table():
    print(row["label"], row["n"], row["median"], row["ratio"], row["verdict"])
print("best:", r.best.label, "—", r.recommendation.sentence)

# %% [markdown]
# Speedup vs value with 95 % CI error bars (needs the `plot` extra:
# `pip install 'mlxprof[plot]'`).

# %%
try:
    fig = r.plot()
    fig.savefig("sweep.png", dpi=120)
    print("wrote sweep.png")
except ImportError as e:
    print(e)

# %% [markdown]
# A grid: several knobs at once (the cartesian product; the all-default point
# is the baseline). Save the result as versioned JSON to reload or resume it.

# %%
g = sweep.run(model="gemma3n-tiny", knobs={"MLX_DISABLE_COMPILE": ["default", 1],
                                           "MLX_BFS_MAX_WIDTH": ["default", 5]},
              reps=2, runs=2, warmup=4, tokens=16)
print(g.to_json()[:200], "…")
rprint(g)
