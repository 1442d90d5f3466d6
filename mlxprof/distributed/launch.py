"""Start N rank processes on this host the way `mlx.launch` would, or join a
run `mlx.launch` started; wait for them; read their replies.

The environment of each rank follows MLX's own launcher
(mlx/_distributed_utils/launch.py) and what its backends read at
`mx.distributed.init` (mlx/distributed/ring/ring.cpp, nccl/nccl.cpp):

  ring (CPU, Metal)  MLX_RANK, MLX_HOSTFILE = a JSON file [["127.0.0.1:P"],
                     ["127.0.0.1:P+1"], …], one listening address per rank
                     (mlx.launch's --starting-port, default 32323)
  nccl (CUDA)        MLX_RANK, MLX_WORLD_SIZE, NCCL_HOST_IP, NCCL_PORT (where
                     rank 0 serves NCCL's unique id; mlx.launch's --nccl-port,
                     default 12345), CUDA_VISIBLE_DEVICES = this rank's GPU

On CUDA mlxprof also sets NCCL_NVLS_ENABLE=0 unless it is set already (NVLink
SHARP needs CUDA multicast objects, which not every driver/VM offers; NCCL's
env docs: docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html), and
puts the `nvidia-nccl` wheel's lib folder on LD_LIBRARY_PATH when that wheel
is importable, so MLX finds libnccl.so.2; the result records both.

A rank that fails stops the others (a collective would wait for it forever);
Ctrl-C stops them all.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..child import child_env
from ..errors import InputError
from ..results import Record

HOST = "127.0.0.1"
RING_PORT = 32323  # mlx.launch --starting-port
NCCL_PORT = 12345  # mlx.launch --nccl-port
DEFAULT_TIMEOUT_S = 3600.0
STDERR_TAIL = 1500
# what mlx.launch puts in each rank's environment: a process started with them joins a group
JOIN_VARS = ("MLX_HOSTFILE", "NCCL_HOST_IP", "MLX_JACCL_COORDINATOR", "MLX_IBV_DEVICES")


class RankError(RuntimeError):
    """A rank crashed, hung past its timeout or printed no readable reply."""


class LaunchInfo(Record):
    mode: str  # "spawned" (mlxprof started the ranks) or "mlx.launch" (joined a run)
    backend: str  # mx.distributed backend: ring, nccl, …
    ranks: int
    host: str
    ports: List[int] = []
    env_added: Dict[str, str] = {}  # variables mlxprof added to every rank's environment
    notes: List[str] = []


@dataclass
class Plan:
    info: LaunchInfo
    rank_env: List[Dict[str, str]]  # per rank: the variables to set
    baseline_env: Dict[str, str]  # the one-device run's
    files: Dict[str, str] = field(default_factory=dict)  # temporary files to write: path → text


def backend_for(mlx_backend: str) -> str:
    """The mx.distributed backend mlx.launch picks for this MLX backend."""
    return "nccl" if mlx_backend == "cuda" else "ring"


def joined() -> bool:
    """Started by mlx.launch (or anything that sets its variables): this process is one rank."""
    return "MLX_RANK" in os.environ and any(v in os.environ for v in JOIN_VARS)


def joined_backend(environ=None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get("NCCL_HOST_IP"):
        return "nccl"
    if environ.get("MLX_JACCL_COORDINATOR") or environ.get("MLX_IBV_DEVICES"):
        return "jaccl"
    return "ring" if environ.get("MLX_HOSTFILE") else "any"


# what this process added to its own environment before joining an NCCL group
JOINED_ADDED: Dict[str, str] = {}


def join_group():
    """Join the group mlx.launch started. NCCL reads its variables when the
    communicator is created, so NCCL_NVLS_ENABLE=0 set here, before that, still
    counts (LD_LIBRARY_PATH would not: the loader read it at start-up)."""
    import mlx.core as mx

    backend = joined_backend()
    if backend == "nccl" and "NCCL_NVLS_ENABLE" not in os.environ:
        os.environ["NCCL_NVLS_ENABLE"] = JOINED_ADDED["NCCL_NVLS_ENABLE"] = "0"
    return mx.distributed.init(strict=True, backend=backend)


def joined_size() -> int:
    """The size of the group mlx.launch started (joins it)."""
    return join_group().size()


def check_ranks(ranks):
    if not isinstance(ranks, int) or isinstance(ranks, bool) or ranks < 2:
        raise InputError(f"--ranks must be at least 2, not {ranks} (one device is `mlxprof decode` "
                         "without --ranks)")


def check_parallel(parallel: str, backend: str):
    """Pipeline parallel needs send/recv, which MLX's NCCL backend does not have
    (mlx/distributed/nccl/nccl.cpp: "[nccl] Send not supported in NCCL backend.")."""
    if parallel == "pipeline" and backend == "nccl":
        raise InputError("--parallel pipeline needs mx.distributed.send/recv, which MLX's NCCL backend does not "
                         "implement; use --parallel tensor on CUDA")


def check_devices(ranks: int, mlx_backend: str, gpus: int, visible: Optional[str] = None,
                  cores: Optional[int] = None):
    """One rank per GPU on CUDA; one Metal GPU per Mac; on the CPU at most one
    rank per core (more would time the scheduler, not the model)."""
    check_ranks(ranks)
    cores = cores or os.cpu_count() or 1
    if mlx_backend == "cpu" and ranks > cores:
        raise InputError(f"--ranks {ranks}: this host has {cores} CPU cores; on the CPU backend each rank is a "
                         "process of its own, at most one per core")
    if mlx_backend == "cuda" and ranks > gpus:
        shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        raise InputError(f"--ranks {ranks}: this host has {gpus} CUDA GPU{'s' if gpus != 1 else ''}{shown}; "
                         "mlxprof starts one rank per GPU")
    if mlx_backend == "metal":
        raise InputError(f"--ranks {ranks}: this Mac has one Metal GPU and {ranks} ranks would share it; "
                         "across Macs, start the ranks with mlx.launch --hostfile HOSTS -- mlxprof decode "
                         f"--ranks {ranks} …")


def check_port_number(port: int):
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a TCP port (1-65535)")


def check_port(port: int, host: str = HOST):
    """InputError when something holds `port`. SO_REUSEADDR, as a listener that
    restarts would use, so a port left in TIME_WAIT by an earlier run is free."""
    check_port_number(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise InputError(f"port {port} on {host} is in use ({e.strerror}); another distributed run? "
                             "pass --port with a free one")


def nccl_lib_dir(python3: str = "python3") -> Optional[str]:
    """The `nvidia-nccl` wheel's lib folder: from this interpreter, else from `python3`."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("nvidia.nccl")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        lib = os.path.join(list(spec.submodule_search_locations)[0], "lib")
        return lib if os.path.isdir(lib) else None
    code = "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))"
    try:
        p = subprocess.run([python3, "-c", code], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lib = p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else None
    return lib if lib and os.path.isdir(lib) else None


def _visible_gpus(environ, ranks: int) -> List[str]:
    """Each rank's CUDA_VISIBLE_DEVICES: the r-th of the user's list, else GPU r (as mlx.launch)."""
    given = environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in given.split(",") if x.strip()] if given else []
    return ids[:ranks] if ids else [str(r) for r in range(ranks)]


def nccl_env(environ) -> Tuple[Dict[str, str], List[str]]:
    """(variables to add, notes): NVLS off unless set; the nvidia-nccl wheel's lib folder first."""
    added, notes = {}, []
    if "NCCL_NVLS_ENABLE" not in environ:
        added["NCCL_NVLS_ENABLE"] = "0"
        notes.append("NCCL_NVLS_ENABLE=0 set by mlxprof (NVLink SHARP off; set it yourself to choose)")
    lib = nccl_lib_dir()
    if lib:
        current = environ.get("LD_LIBRARY_PATH", "")
        if lib not in current.split(os.pathsep):
            added["LD_LIBRARY_PATH"] = os.pathsep.join([lib] + ([current] if current else []))
            notes.append(f"LD_LIBRARY_PATH: {lib} (the nvidia-nccl wheel's libnccl) put first by mlxprof")
    return added, notes


def plan(ranks: int, mlx_backend: str, workdir: str, port: Optional[int] = None,
         env: Optional[Dict[str, str]] = None, environ=None) -> Plan:
    """Every rank's environment for `ranks` processes on this host; the ports
    checked free. The ring's hostfile is to be written in `workdir`."""
    environ = dict(os.environ if environ is None else environ)
    env = dict(env or {})
    backend = backend_for(mlx_backend)
    if backend == "nccl":
        port = NCCL_PORT if port is None else port
        check_port(port)
        added, notes = nccl_env({**environ, **env})
        gpus = _visible_gpus({**environ, **env}, ranks)
        common = {**env, **added, "MLX_WORLD_SIZE": str(ranks), "NCCL_HOST_IP": HOST, "NCCL_PORT": str(port)}
        rank_env = [{**common, "MLX_RANK": str(r), "CUDA_VISIBLE_DEVICES": gpus[r]} for r in range(ranks)]
        info = LaunchInfo(mode="spawned", backend=backend, ranks=ranks, host=HOST, ports=[port],
                          env_added=added, notes=notes)
        return Plan(info, rank_env, {**env, **added, "CUDA_VISIBLE_DEVICES": gpus[0]})
    port = RING_PORT if port is None else port
    ports = [port + r for r in range(ranks)]
    if ports[-1] > 65535:
        raise InputError(f"--ranks {ranks} from port {port} needs ports {port}–{ports[-1]}, past 65535; "
                         "pass a lower --port")
    for p in ports:
        check_port(p)
    hostfile = os.path.join(workdir, "ring-hosts.json")
    rank_env = [{**env, "MLX_RANK": str(r), "MLX_HOSTFILE": hostfile} for r in range(ranks)]
    info = LaunchInfo(mode="spawned", backend=backend, ranks=ranks, host=HOST, ports=ports)
    return Plan(info, rank_env, env, files={hostfile: json.dumps([[f"{HOST}:{p}"] for p in ports])})


# ---------------------------------------------------------------- processes


def rank_command() -> List[str]:
    return [sys.executable, "-m", "mlxprof.distributed.rank"]


def _tail(path: str, n: int = STDERR_TAIL) -> str:
    try:
        with open(path, errors="replace") as f:
            text = f.read().strip()
    except OSError:
        return ""
    return text if len(text) <= n else "…" + text[-n:]


def _stop(procs):
    """SIGTERM the ranks still running, then SIGKILL what is left after 5 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    end = time.monotonic() + 5.0
    for p in procs:
        try:
            p.wait(timeout=max(0.05, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _failure(rank: int, code: int, err_path: str, who: str) -> Exception:
    """A failed rank as one line: its refusal (InputError), else its last stderr line."""
    from ..sweep.worker import REFUSAL

    tail = _tail(err_path)
    refused = [ln for ln in tail.splitlines() if ln.startswith(REFUSAL)]
    if code == 2 and refused:
        return InputError(refused[-1][len(REFUSAL):])
    last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "no stderr")
    return RankError(f"{who} {rank} exited with code {code}: {last}")


def run_processes(job_json: str, envs: List[Dict[str, str]], timeout: Optional[float] = None,
                  who: str = "rank") -> List[str]:
    """Start one rank per environment, wait for all; their stdout texts. The
    first rank to fail (or the timeout) stops the rest and raises."""
    from ..sweep.protocol import SPAWN_VAR

    timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
    with tempfile.TemporaryDirectory(prefix="mlxprof-ranks-") as d:
        procs, outs, errs = [], [], []
        try:
            for r, changes in enumerate(envs):
                outs.append(os.path.join(d, f"{r}.out"))
                errs.append(os.path.join(d, f"{r}.err"))
                env = child_env({**changes, SPAWN_VAR: repr(time.time())})
                with open(outs[-1], "w") as fo, open(errs[-1], "w") as fe:
                    procs.append(subprocess.Popen(rank_command() + [job_json], env=env, stdin=subprocess.DEVNULL,
                                                  stdout=fo, stderr=fe))
            _wait_all(procs, errs, timeout, who)
        finally:
            _stop(procs)
        texts = []
        for path in outs:
            with open(path, errors="replace") as f:
                texts.append(f.read())
        return texts


def _wait_all(procs, errs, timeout: float, who: str):
    end = time.monotonic() + timeout
    while True:
        codes = [p.poll() for p in procs]
        bad = next((r for r, c in enumerate(codes) if c not in (None, 0)), None)
        if bad is not None:
            raise _failure(bad, codes[bad], errs[bad], who)
        if all(c == 0 for c in codes):
            return
        if time.monotonic() > end:
            late = [r for r, c in enumerate(codes) if c is None]
            raise RankError(f"{who} {late[0]} still running after the {timeout:g} s timeout: "
                            f"{_tail(errs[late[0]], 300) or 'no stderr'}")
        time.sleep(0.05)


def write_files(files: Dict[str, str]):
    for path, text in files.items():
        with open(path, "w") as f:
            f.write(text + "\n")
