"""The sweep worker protocol: a reply round-trips through its tagged line, a
garbled or wrongly shaped reply is a failed point (not a crash), and one real
`python -m mlxprof.sweep.worker` run on gemma3n-tiny read by the runner."""

import json
import subprocess
import sys
import textwrap

import pytest

from mlxprof.decode import PhaseSplit
from mlxprof.sweep.knobs import KnobSetting
from mlxprof.sweep.protocol import (TAG, ProtocolError, WorkerJob, WorkerReply, WorkerTiming, decode_job,
                                    decode_reply, encode_job, encode_reply)
from mlxprof.sweep.runner import run_point, worker_command


def a_reply(**kw):
    base = dict(tok_s=[101.5, 99.25], prefill_tok_s=[480.0, 510.0],
                split=PhaseSplit(build_ms=1.0, submit_ms=7.5, wait_ms=0.5, token_ms=9.25, unattributed_ms=0.25),
                peak_memory_bytes=123456, backend="cpu", chip="test chip", env={"MLX_BFS_MAX_WIDTH": "5"},
                timing=WorkerTiming(start_s=0.05, import_s=0.5, build_s=0.25, measure_s=1.5))
    return WorkerReply(**{**base, **kw})


def test_reply_round_trips_through_the_tagged_line():
    reply = a_reply()
    line = encode_reply(reply)
    assert line.startswith(TAG) and line.endswith("\n") and line.count("\n") == 1
    stdout = "library chatter\n" + '{"tok_s": [1]}\n' + line + "trailing chatter\n"
    assert decode_reply(stdout) == reply
    # the last tagged line wins
    later = a_reply(tok_s=[7.0])
    assert decode_reply(line + encode_reply(later)).tok_s == [7.0]


def test_job_round_trips():
    job = WorkerJob(model="gemma3n-tiny", runs=2, tokens=8, dtype="float16")
    assert decode_job(encode_job(job)) == job
    with pytest.raises(ProtocolError, match="model"):
        decode_job('{"runs": 2}')


@pytest.mark.parametrize("stdout, needle", [
    ("no tag here\n", "no 'MLXPROF-RESULT' line"),
    (TAG + "{not json\n", "Invalid JSON"),
    (TAG + json.dumps({"tok_s": [100.0]}) + "\n", "timing"),  # a field missing
    (TAG + json.dumps({"tok_s": [100.0], "timing": dict(start_s=0, import_s=0, build_s=0, measure_s=0),
                       "surprise": 1}) + "\n", "surprise"),  # a field this side does not know
    (TAG + json.dumps({"tok_s": [], "timing": dict(start_s=0, import_s=0, build_s=0, measure_s=0)}) + "\n",
     "bad tok/s"),
    (TAG + json.dumps({"tok_s": [-1.0], "timing": dict(start_s=0, import_s=0, build_s=0, measure_s=0)}) + "\n",
     "bad tok/s"),
    (TAG + json.dumps({"tok_s": ["fast"], "timing": dict(start_s=0, import_s=0, build_s=0, measure_s=0)}) + "\n",
     "tok_s"),
])
def test_bad_replies_are_protocol_errors(stdout, needle):
    with pytest.raises(ProtocolError, match=needle):
        decode_reply(stdout)


def fake_worker(body: str):
    """A worker command that runs `body` (the job JSON is its argv[1])."""
    return [sys.executable, "-c", textwrap.dedent(body)]


@pytest.mark.parametrize("body, needle", [
    ('print("chatter"); print("MLXPROF-RESULT {garbled")', "Invalid JSON"),
    ('import json; print("MLXPROF-RESULT " + json.dumps({"tok_s": [1.0], "timing": {"start_s": 0}}))',
     "timing.import_s"),
    ('print("nothing tagged")', "no 'MLXPROF-RESULT' line"),
])
def test_unreadable_reply_is_a_failed_point(body, needle):
    point, reply = run_point(KnobSetting(label="x", env={}), WorkerJob(model="m"), 3, 1, 30, fake_worker(body))
    assert reply is None and point.status == "failed" and point.returncode == 0
    assert point.error.startswith("unreadable worker output") and needle in point.error
    assert point.index == 3 and point.round == 1 and point.label == "x"


def test_fake_worker_receives_the_job_and_the_environment():
    body = '''
        import json, os, sys
        job = json.loads(sys.argv[1])
        print("MLXPROF-RESULT " + json.dumps(dict(
            tok_s=[float(job["runs"])], env={"MLX_X": os.environ.get("MLX_X", "unset")},
            timing=dict(start_s=0.1, import_s=0.2, build_s=0.3, measure_s=0.4))))
    '''
    point, reply = run_point(KnobSetting(label="on", env={"MLX_X": "7"}), WorkerJob(model="m", runs=5), 0, 0, 30,
                             fake_worker(body))
    assert point.status == "ok" and reply.tok_s == [5.0] and point.env_seen == {"MLX_X": "7"}
    assert point.overhead.measure_s == 0.4 and point.overhead.total_s == point.wall_s


def test_package_import_is_light():
    # `python -m mlxprof.sweep.worker` imports the package before the worker's
    # clock starts: mlx and pydantic must load after it, inside `run`
    code = "import sys, mlxprof.sweep; print(sorted(m for m in ('mlx', 'mlx.core', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_real_worker_on_gemma3n_tiny():
    assert worker_command()[-2:] == ["-m", "mlxprof.sweep.worker"]
    job = WorkerJob(model="gemma3n-tiny", runs=2, warmup=1, tokens=4, prompt_tokens=4)
    point, reply = run_point(KnobSetting(label="compile off", env={"MLX_DISABLE_COMPILE": "1"}), job, 0, 0, 300)
    assert point.status == "ok", point.error
    assert len(reply.tok_s) == 2 and point.tok_s == reply.tok_s and all(x > 0 for x in reply.tok_s)
    assert len(reply.prefill_tok_s) == 2 and reply.split.token_ms > 0 and reply.peak_memory_bytes > 0
    assert reply.model.alias == "gemma3n-tiny" and reply.model.weights == "synthetic"
    assert (reply.settings.runs, reply.settings.warmup, reply.settings.tokens) == (2, 1, 4)
    assert reply.backend in ("cpu", "metal", "cuda") and reply.chip
    assert point.env_seen.get("MLX_DISABLE_COMPILE") == "1"
    t = point.overhead
    assert t.start_s > 0 and t.import_s > 0 and t.build_s > 0 and t.measure_s > 0
    assert t.total_s >= t.start_s + t.import_s + t.build_s + t.measure_s
