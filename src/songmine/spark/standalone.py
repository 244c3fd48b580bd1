"""A throwaway Spark standalone cluster on this machine: one master and N workers on 127.0.0.1.

For the tests and benchmarks (and for trying the cluster path of every
``--engine spark`` verb on one machine): the same deploy code a real cluster
runs — ``spark-class org.apache.spark.deploy.master.Master`` and
``...worker.Worker`` from the pyspark installation, each a JVM of its own,
workers launching executor JVMs that run this Python — only every address is
127.0.0.1.

>>> with LocalCluster(workers=2) as cluster:          # doctest: +SKIP
...     session = get_session(cluster.master_url)

Bounded both ways: :meth:`LocalCluster.start` raises
:class:`~songmine.errors.EngineError` when the master or a worker is not up
within ``start_timeout_s`` (with the tail of its log), and
:meth:`LocalCluster.stop` ends every process it started — master, workers and
the executors and Python workers below them (each started in a process group
of its own: SIGTERM, then SIGKILL after ``stop_timeout_s``) — also at
interpreter exit if nobody called it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ..errors import EngineError, ParameterError
from .session import find_java

__all__ = ["LocalCluster", "spark_home"]


def spark_home() -> Path:
    """The Spark installation pyspark brings (``$SPARK_HOME`` when set)."""
    env = os.environ.get("SPARK_HOME")
    if env:
        return Path(env)
    try:
        from pyspark.find_spark_home import _find_spark_home
    except ImportError:
        raise EngineError("pyspark is not installed: pip install 'songmine[spark]'") from None
    return Path(_find_spark_home())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """A standalone master and ``workers`` workers on 127.0.0.1 (see the module doc).

    Parameters
    ----------
    workers : int
        Worker processes (each offers its cores to one executor per application).
    cores : int
        Cores each worker offers.
    memory : str
        Memory each worker offers its executors (executors ask 1 GB by default).
    work_dir : path or None
        Logs and the workers' scratch space (default: a temporary folder, removed by :meth:`stop`).
    start_timeout_s, stop_timeout_s : float
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        cores: int = 1,
        memory: str = "1536m",
        work_dir: str | os.PathLike | None = None,
        start_timeout_s: float = 240.0,
        stop_timeout_s: float = 20.0,
    ):
        if workers < 1 or cores < 1:
            raise ParameterError(f"workers={workers} and cores={cores} must be >= 1")
        self.n_workers, self.cores, self.memory = workers, cores, memory
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.port = self.ui_port = 0

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ start
    def start(self) -> LocalCluster:
        """Start the master, then the workers; return once all workers registered (else EngineError)."""
        java = find_java()
        cls = spark_home() / "bin" / "spark-class"
        if not cls.exists():
            raise EngineError(f"{cls} not found: the pyspark installation has no Spark scripts")
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="songmine-spark-cluster-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.work_dir / "logs"),
            "SPARK_WORKER_DIR": str(self.work_dir / "work"),
            "PYSPARK_PYTHON": sys.executable,
            "JAVA_HOME": os.environ.get("JAVA_HOME") or str(Path(java).resolve().parents[1]),
        }
        atexit.register(self.stop)
        deadline = time.monotonic() + self.start_timeout_s
        try:
            self.port, self.ui_port = _free_port(), _free_port()
            self._spawn(
                "master",
                [
                    str(cls),
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--webui-port",
                    str(self.ui_port),
                ],
                env,
            )
            self._wait(lambda s: s.get("status") == "ALIVE", deadline, "the master")
            for i in range(self.n_workers):
                self._spawn(
                    f"worker-{i}",
                    [
                        str(cls),
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        str(self.cores),
                        "--memory",
                        self.memory,
                        "--webui-port",
                        str(_free_port()),
                        "--work-dir",
                        str(self.work_dir / "work" / f"w{i}"),
                        self.master_url,
                    ],
                    env,
                )
            self._wait(
                lambda s: s.get("aliveworkers", len(s.get("workers", []))) >= self.n_workers,
                deadline,
                f"{self.n_workers} workers",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, cmd: list[str], env: dict) -> None:
        log = self.work_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.work_dir,
            )
        self.procs.append(proc)
        self.logs.append(log)

    def status(self) -> dict:
        """The master's JSON status (workers, applications), as its web UI serves it."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
            return json.loads(r.read().decode())

    def _wait(self, ready, deadline: float, what: str) -> None:
        while True:
            for proc, log in zip(self.procs, self.logs):
                if proc.poll() is not None:
                    raise EngineError(f"{log.stem} exited with {proc.returncode} while starting: {self._tail(log)}")
            try:
                if ready(self.status()):
                    return
            except (OSError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise EngineError(
                    f"{what} not up within {self.start_timeout_s:g} s "
                    f"({'; '.join(f'{lg.stem}: {self._tail(lg)}' for lg in self.logs)})"
                )
            time.sleep(0.5)

    @staticmethod
    def _tail(log: Path, n: int = 3) -> str:
        try:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:])[-600:] or "(empty log)"

    # ------------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop everything this cluster started (idempotent, bounded)."""
        procs, self.procs = self.procs, []
        for proc in reversed(procs):  # workers first: the master would otherwise see them lost
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in procs:  # whatever is left of each group (executors, Python workers): killed
            self._signal(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10  # until the last member of each group is gone, not just signalled
        while any(self._group_alive(proc.pid) for proc in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        atexit.unregister(self.stop)
        if self._own_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # its own group (start_new_session): the JVM and what it launched
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalCluster({self.master_url}, workers={self.n_workers}, cores={self.cores})"
