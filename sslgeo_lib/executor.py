"""Where a sweep's missing runs train: here ("local", the default: up to `resolve_jobs()` runs at once, each in
its own process with `TRAINING_THREADS` threads, so a run's weights do not depend on how many train beside it),
or as Ray tasks on a cluster ("ray") that all write into one run store on a shared filesystem. Both call
`runs.load_or_train_outcome` for each run; `train_runs` is the one entry point above them.

The choice is `sweep(..., executor=...)`, `sslgeo train --executor`, or `$SSLGEO_EXECUTOR` (what notebooks read);
the local executor's parallelism is `--jobs` / `$SSLGEO_JOBS`.
The Ray executor connects to `address` (else Ray's own `$RAY_ADDRESS`, else it starts Ray on this machine) and
submits one task per missing run: one GPU each when the cluster has GPUs, else `TRAINING_THREADS` CPUs. Each
task runs `runs.load_or_train_outcome`, so the store's per-run lock makes concurrent drivers safe (a run is trained
once; the other task waits and loads it) and an interrupted run resumes from its checkpoint. A failed task is
reported with its run id and resubmitted (up to `RETRIES` times); it resumes from the checkpoint its attempt left.
The workers must run the same sslgeo training code and see the same store, data and cache paths (sent to them as
environment variables); a worker whose code differs is an error, never a silently different run.
"""
from __future__ import annotations

import multiprocessing
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from sslgeo_lib.config import RunConfig
from sslgeo_lib.data import cache_dir, fingerprint
from sslgeo_lib.fileio import env_path
from sslgeo_lib.runs import load_or_train, load_or_train_outcome
from sslgeo_lib.store import LOCKS, Run, StoreError, code_hash, entry_path, find_entry, read_entry, runs_dir
from sslgeo_lib.training.loop import TRAINING_THREADS, default_device

EXECUTORS = ("local", "ray")
TASK_NAME = "sslgeo_train"  # a Ray worker running a run is titled "ray::sslgeo_train"
RETRIES = 2
POLL_SECONDS = 2.0


class SweepError(RuntimeError):
    """Runs of a sweep failed on every attempt, or the cluster cannot train them as this driver would."""


def resolve_executor(name: str | None = None) -> str:
    """`name`, else $SSLGEO_EXECUTOR, else "local"; anything else is an error that lists the choices."""
    value = name or os.environ.get("SSLGEO_EXECUTOR") or "local"
    if value not in EXECUTORS:
        source = "executor" if name else "SSLGEO_EXECUTOR"
        raise ValueError(f"{source}={value!r} is unknown; accepted: {', '.join(EXECUTORS)}")
    return value


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_jobs(jobs: int | str | None = None) -> int:
    """How many runs the local executor trains at once: `jobs`, else $SSLGEO_JOBS, else (on the CPU) the cores
    this process may use divided by the threads of one run (`TRAINING_THREADS`), at least 1, and 1 with a GPU.
    Anything but a whole number >= 1 is an error that says what is accepted."""
    value = jobs if jobs is not None else os.environ.get("SSLGEO_JOBS", "").strip() or None
    if value is None:  # on a GPU one run at a time: the runs would share it
        return 1 if default_device().type != "cpu" else max(1, available_cores() // TRAINING_THREADS)
    source = "jobs" if jobs is not None else "SSLGEO_JOBS"
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise ValueError(f"{source}={value!r} is not a number of runs to train at once; accepted: a whole number "
                         f">= 1 (each run uses {TRAINING_THREADS} threads; this machine has {available_cores()} "
                         f"cores)")
    return n


def train_runs(configs: list[RunConfig], executor: str | None = None, address: str | None = None,
               progress: bool = True, jobs: int | None = None) -> dict[RunConfig, Run]:
    """Every run of `configs` (each once, in the order given), loading the stored ones and training the missing
    ones: on Ray (`executor` "ray", see `train_on_ray`; a cluster's entries are read as its workers wrote them)
    or here (`train_locally`, `jobs` at once)."""
    configs = list(dict.fromkeys(configs))
    missing = [c for c in configs if find_entry(c) is None]
    if resolve_executor(executor) == "ray" and missing:
        trained = {c: read_entry(o.path, c) for c, o in train_on_ray(missing, address, progress).items()}
    else:
        trained = train_locally(missing, progress, jobs)
    return {c: trained[c] if c in trained else load_or_train(c, progress=progress) for c in configs}


def _train_in_worker(config: dict) -> tuple[str, str, int, float]:
    """One run in a local worker process: (its entry's path, action, epoch resumed from, seconds)."""
    t0 = time.perf_counter()
    out = load_or_train_outcome(RunConfig(**config), progress=False)
    return str(out.run.path), out.action, out.from_epoch, time.perf_counter() - t0


def train_locally(configs: list[RunConfig], progress: bool = True, jobs: int | None = None) -> dict[RunConfig, Run]:
    """Load or train every run of `configs` on this machine, up to `resolve_jobs(jobs)` at once. One at a time,
    they train in this process with a progress bar each; more, each trains in its own process (started afresh,
    `TRAINING_THREADS` threads: the same weights as alone), under a bar that counts runs, with a line per finished
    run. The store's per-run lock keeps two processes from training one run. A run that fails, or an interrupt,
    stops every other run at once (each resumes from its last checkpoint next time) and the error is raised, with
    a note that names the run."""
    configs = list(dict.fromkeys(configs))
    if not configs:
        return {}
    n = min(resolve_jobs(jobs), len(configs))
    if n <= 1:
        return {c: load_or_train(c, progress=progress) for c in configs}
    out: dict[RunConfig, Run] = {}
    say = lambda line: tqdm.write(line, file=sys.stderr)  # noqa: E731 - above the bar; also when it is off
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
    try:
        with tqdm(total=len(configs), unit="run", desc=f"local: {len(configs)} runs, {n} at once",
                  disable=not progress, dynamic_ncols=True) as bar:
            futures = {pool.submit(_train_in_worker, c.to_dict()): c for c in configs}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: configs.index(futures[f])):
                    cfg, exc = futures[fut], fut.exception()
                    if exc is not None:
                        exc.add_note(f"in run {_label(cfg)}, trained in a worker process; the runs beside it were "
                                     f"stopped and resume from their last checkpoints")
                        raise exc
                    path, action, from_epoch, seconds = fut.result()
                    out[cfg] = read_entry(Path(path), cfg)
                    resumed = f" from epoch {from_epoch}" if action == "resumed" else ""
                    say(f"run {Path(path).name} {_label(cfg)}: {action}{resumed} in {seconds / 60:.1f} min")
                    bar.update()
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()
    return {c: out[c] for c in configs}


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued runs and end the running ones now (each resumes from its last checkpoint). The pool's
    processes are reached through its private table: Python 3.11 has no public way to end a busy worker."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=30)


@dataclass(frozen=True)
class RayOutcome:
    """One run as the Ray executor saw it: the store entry's path, what the last attempt did (see
    `runs.Outcome`), the epoch it resumed from, how many attempts it took, and where and how fast it ran."""

    path: Path
    action: str
    from_epoch: int
    attempts: int
    host: str
    seconds: float


def worker_env() -> dict[str, str]:
    """What a worker needs to find the store, the data and the cache as this driver does: every SSLGEO_*
    variable, with the three paths made absolute (a relative one means the driver's working directory)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("SSLGEO_") and k != "SSLGEO_EXECUTOR"}
    env.update(SSLGEO_RUNS=str(runs_dir()), SSLGEO_CACHE=str(cache_dir()))
    if os.environ.get("SSLGEO_DATA"):
        env["SSLGEO_DATA"] = str(env_path("SSLGEO_DATA", Path()))
    return env


def _train_task(config: dict, code: str, data: str, marker: str, board, key: int) -> dict:
    """The body of one Ray task (runs on a worker): check that this node trains what the driver would (same
    training code, same data, the driver's store), then load or train the run, and say what happened."""
    host, cfg = socket.gethostname(), RunConfig(**config)
    if code_hash() != code:
        raise SweepError(f"the sslgeo training code on {host} ({Path(__file__).parent}) differs from the "
                         f"driver's: install the same version on every node")
    if not (runs_dir() / marker).is_file():
        raise SweepError(f"the run store {runs_dir()} (SSLGEO_RUNS) on {host} is not the driver's (it lacks the "
                         f"driver's {marker}): put the store on a filesystem every node mounts at the same path")
    if fingerprint(cfg.dataset) != data:
        raise SweepError(f"the data of {cfg.dataset} on {host} differs from the driver's (another fingerprint): "
                         f"point SSLGEO_DATA on every node at the same copy")
    board.start.remote(key, host, entry_path(cfg).name)
    t0 = time.perf_counter()
    out = load_or_train_outcome(cfg, progress=False)
    return {"path": str(out.run.path), "action": out.action, "from_epoch": out.from_epoch,
            "host": host, "seconds": time.perf_counter() - t0}


def _label(cfg: RunConfig) -> str:
    default = RunConfig()
    shape = (f" depth={cfg.projector_depth} width={cfg.projector_width}"
             if (cfg.projector_depth, cfg.projector_width) != (default.projector_depth, default.projector_width)
             else "")
    beyond = "".join(f" {v}" for v, d in ((cfg.method, "simclr"), (cfg.augment_family, "all")) if v != d)
    return f"s={cfg.strength:g} seed={cfg.seed}{shape}{beyond}"


# A Ray instance this module starts for itself (no address given) is private to this driver: its own temporary
# folder (removed afterwards), bound to 127.0.0.1 (Ray's documented switch for single-machine instances; nothing
# from another host can join it), and token authentication with a token that lives only in this process's
# environment and its workers'. Nothing is written to ~/.ray (Ray 2.60 would otherwise save a new token to
# ~/.ray/auth_token, which later `ray start` and joins on this machine pick up). The user's own RAY_AUTH_MODE,
# when set, is respected.
PRIVATE_INSTANCE_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def private_instance_env() -> dict[str, str | None]:
    """The environment a private Ray instance runs in (None = unset): loopback only, and token authentication
    with a fresh in-memory token unless the user chose an auth mode."""
    env: dict[str, str | None] = dict(PRIVATE_INSTANCE_ENV)
    if os.environ.get("RAY_AUTH_MODE", "token").lower() == "token":
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_AUTH_TOKEN_PATH=None)
    return env


@contextmanager
def scoped_env(changes: dict[str, str | None]):
    """Set (or, for None, unset) environment variables for the block; restore them afterwards."""
    before = {k: os.environ.get(k) for k in changes}
    try:
        _set_env(changes)
        yield
    finally:
        _set_env(before)


def _set_env(values: dict[str, str | None]) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextmanager
def _loopback_only():
    """Ray reads its single-machine switch (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: this node's address is
    127.0.0.1) once, when it is first imported, and this process may have imported Ray already: the constant is
    set for the block as the variable would have set it (the instance's own processes read the variable)."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _forget_ray_auth() -> None:
    """Make Ray re-read its auth settings from the environment (it caches them per process)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # another Ray version: nothing cached under these names
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


PROBE_SECONDS = 10.0  # how long a HOST:PORT address may take to accept a connection before the sweep gives up


def check_reachable(address: str) -> None:
    """A HOST:PORT cluster address accepts a TCP connection within PROBE_SECONDS, or a SweepError that names it
    and says how to start a cluster (Ray itself retries an unreachable address for minutes). "auto" and
    "ray://" addresses are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379), auto or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as exc:
        raise SweepError(f"no Ray cluster answers at {address} ({exc.strerror or type(exc).__name__}); start one "
                         f"there with `ray start --head --port={port}` (workers: `ray start --address={address}`), "
                         f"or leave out --address and RAY_ADDRESS to train on a private Ray instance on this "
                         f"machine") from None


@contextmanager
def ray_connection(address: str | None = None):
    """Ray, connected for the block: to `address` (else $RAY_ADDRESS), as Ray's own settings say (a cluster with
    token authentication: RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token); without either, a private instance on this machine (see PRIVATE_INSTANCE_ENV), stopped
    and removed at the end. A Ray already initialised in this process is used as it is. Yields the private
    instance's temporary folder (None when it joined a cluster or found Ray initialised)."""
    import ray

    if ray.is_initialized():
        yield None
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target and target != "local":  # "local": Ray's word for a new instance here, which is the private one
        check_reachable(target)
        ray.init(address=target, logging_level="WARNING")
        try:
            yield None
        finally:
            ray.shutdown()
        return
    tmp = tempfile.mkdtemp(prefix="sslgeo-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    try:
        with scoped_env(private_instance_env()), _loopback_only():
            _forget_ray_auth()
            ray.init(address="local", _temp_dir=tmp, include_dashboard=False, logging_level="WARNING")
            try:
                yield tmp
            finally:
                ray.shutdown()
    finally:
        _forget_ray_auth()
        shutil.rmtree(tmp, ignore_errors=True)


def train_on_ray(configs: list[RunConfig], address: str | None = None,
                 progress: bool = True) -> dict[RunConfig, RayOutcome]:
    """Train (or load) every run of `configs` as Ray tasks; return each run's outcome once all have ended.
    Three steps: connect (`ray_connection`), submit (`_submit`: one task per run), collect (`_collect`).

    `address`: a running cluster ("auto", "HOST:PORT" or "ray://HOST:PORT"); None uses $RAY_ADDRESS, and without
    it starts a new Ray instance on this machine (stopped again at the end). Each run takes one GPU when the
    cluster has GPUs, and `TRAINING_THREADS` CPUs. A progress bar counts finished runs and shows which are
    training and where (a display only: if it cannot be read, the sweep goes on); each run's end is a line with
    its id. A run whose task fails is reported and resubmitted up to `RETRIES` times (it resumes from the
    checkpoint its attempt left), unless the failure cannot change on a retry (a bad config, store or data;
    another code version on a node: `SweepError` at once); runs that still fail raise `SweepError` naming each,
    after every other run has ended.
    """
    try:
        import ray
    except ImportError:
        raise SweepError("the ray executor needs Ray: pip install -r requirements.txt (or pip install 'sslgeo[ray]'),"
                         " or use --executor local") from None
    configs = list(dict.fromkeys(configs))
    marker = Path(LOCKS) / f"driver-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    with ray_connection(address):
        try:
            return _collect(ray, _submit(ray, configs, marker), progress)
        finally:
            (runs_dir() / marker).unlink(missing_ok=True)


@dataclass
class _RayJob:
    """Submitted Ray tasks: the runs, how to (re)submit run i, the board, and each pending task's (run, attempt)."""

    configs: list[RunConfig]
    submit: object
    board: object
    marker: Path
    pending: dict = field(default_factory=dict)


def _submit(ray, configs: list[RunConfig], marker: Path) -> _RayJob:
    """One task per run, on the connected cluster: the store's marker (a worker that cannot see it does not share
    this store), the board on the driver's node, and the tasks with the driver's code hash and data fingerprints."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    board = ray.remote(_Board).options(num_cpus=0, scheduling_strategy=here).remote()  # on the driver's node
    task = ray.remote(_train_task).options(name=TASK_NAME, num_cpus=TRAINING_THREADS, num_gpus=gpus, max_retries=0,
                                           runtime_env={"env_vars": worker_env()})
    code, data = code_hash(), {d: fingerprint(d) for d in {c.dataset for c in configs}}
    (runs_dir() / marker).parent.mkdir(parents=True, exist_ok=True)
    (runs_dir() / marker).touch()
    submit = lambda i: task.remote(configs[i].to_dict(), code, data[configs[i].dataset], str(marker),  # noqa: E731
                                   board, i)
    job = _RayJob(configs, submit, board, marker)
    job.pending = {submit(i): (i, 1) for i in range(len(configs))}
    return job


# a retry cannot change these
FINAL_ERRORS = (ValueError, TypeError, KeyError, StoreError, FileNotFoundError, FloatingPointError)


def _collect(ray, job: _RayJob, progress: bool) -> dict[RunConfig, RayOutcome]:
    """Wait for every task of `job`, resubmitting failed ones (see `train_on_ray`); the outcomes in the order
    given. An interrupted driver cancels what it submitted."""
    configs, pending = job.configs, job.pending
    done: dict[RunConfig, RayOutcome] = {}
    failed: dict[RunConfig, str] = {}
    t_start = time.perf_counter()
    say = lambda line: tqdm.write(line, file=sys.stderr)  # noqa: E731 - above the bar; also when it is off

    def where() -> dict[int, tuple[str, str]]:
        try:
            return ray.get(job.board.status.remote(), timeout=POLL_SECONDS)
        except (ray.exceptions.RayError, TimeoutError):  # GetTimeoutError is both
            return {}

    bar = tqdm(total=len(configs), unit="run", desc=f"ray: {len(configs)} runs", disable=not progress,
               dynamic_ncols=True)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                i, attempt = pending.pop(ref)
                cfg = configs[i]
                try:
                    r = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    reason = _reason(exc)
                    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
                    if isinstance(cause, SweepError):
                        raise cause from None  # a node that cannot train this driver's runs
                    _host, name = where().get(i, ("", "(not started)"))
                    job.board.end.remote(i)  # before a new attempt can announce itself
                    if attempt <= RETRIES and not isinstance(cause, FINAL_ERRORS):
                        ckpt = name != "(not started)" and (runs_dir() / name / "checkpoint.pt").is_file()
                        say(f"run {name} {_label(cfg)} failed on attempt {attempt} ({reason}); retrying "
                            + ("from its checkpoint" if ckpt else "from the start (no checkpoint yet)"))
                        pending[job.submit(i)] = (i, attempt + 1)
                    else:
                        failed[cfg] = f"run {name}: {reason}"
                        say(f"run {name} {_label(cfg)} FAILED on attempt {attempt} of {RETRIES + 1}: {reason}")
                        bar.update()
                    continue
                job.board.end.remote(i)
                out = RayOutcome(Path(r["path"]), r["action"], r["from_epoch"], attempt, r["host"], r["seconds"])
                done[cfg] = out
                resumed = f" from epoch {out.from_epoch}" if out.action == "resumed" else ""
                say(f"run {out.path.name} {_label(cfg)}: {out.action}{resumed} on {out.host} "
                    f"in {out.seconds / 60:.1f} min (attempt {attempt})")
                bar.update()
            bar.set_postfix_str(_status(where(), [configs[i] for i, _ in pending.values()],
                                        [i for i, _ in pending.values()], len(failed)), refresh=True)
    except BaseException:
        for ref in pending:  # an interrupted driver leaves nothing training on its behalf
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
    if progress:
        print(f"ray: {len(done)} of {len(configs)} runs in {(time.perf_counter() - t_start) / 60:.1f} min", flush=True)
    if failed:
        raise SweepError(f"{len(failed)} run(s) failed (each retried up to {RETRIES} times where a retry could help): "
                         + "; ".join(f"{_label(c)} ({why})" for c, why in failed.items()))
    return {c: done[c] for c in configs}  # in the order given


def _reason(exc) -> str:
    """The last line of a Ray error: the worker's exception, or why the worker died."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _status(where: dict[int, tuple[str, str]], waiting: list[RunConfig], keys: list[int], n_failed: int) -> str:
    """"training 2 (host: s=1 seed=0, ...), queued 3, failed 0" from the board and the pending runs."""
    training = [f"{where[k][0]}: {_label(c)}" for c, k in zip(waiting, keys) if k in where]
    text = f"training {len(training)}" + (f" ({', '.join(training)})" if training else "")
    return f"{text}, queued {len(waiting) - len(training)}, failed {n_failed}"


class _Board:
    """A Ray actor (made one by `ray.remote` in `train_on_ray`) that tasks tell where they train: the driver's
    progress bar reads it."""

    def __init__(self):
        self.where: dict[int, tuple[str, str]] = {}

    def start(self, key: int, host: str, run: str) -> None:
        self.where[key] = (host, run)

    def end(self, key: int) -> None:
        self.where.pop(key, None)

    def status(self) -> dict[int, tuple[str, str]]:
        return dict(self.where)
