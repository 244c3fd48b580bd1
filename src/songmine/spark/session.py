"""The one place songmine starts Apache Spark (optional extra ``songmine[spark]``).

:func:`get_session` returns a :class:`pyspark.sql.SparkSession`, starting it
once and reusing it afterwards (Spark allows one ``SparkContext`` per process;
asking for another master stops the old session first). What it guarantees:

* **Loopback for local masters** (``local``, ``local[N]``, ``local[*]``):
  ``SPARK_LOCAL_IP=127.0.0.1``, ``spark.driver.host`` and
  ``spark.driver.bindAddress`` = 127.0.0.1, so nothing listens on a public
  interface and a machine without a resolvable hostname still works. For
  cluster masters (``spark://``, ``yarn``, ``k8s://``) the driver must be
  reachable by the executors, so these are left to Spark (override with
  ``conf={"spark.driver.host": ...}``).
* ``spark.ui.enabled=false``, no console progress bar, few shuffle partitions
  (``SparkSettings.shuffle_partitions``), Arrow transfers on, workers run the
  driver's Python (``PYSPARK_PYTHON``).
* **Bounded failure**: no Java → :class:`~songmine.errors.EngineError` at once;
  a ``spark://`` master whose port refuses or times out → ``EngineError``
  within ``connect_timeout_s``; a session that does not start, or a master
  that accepts no job (no workers, unreachable YARN), → ``EngineError``
  within ``start_timeout_s`` — never a hang. :func:`run_job` bounds any later
  action the same way and turns worker failures into one-line ``EngineError``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import re
import shutil
import socket
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import EngineError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = [
    "SparkSettings",
    "get_session",
    "stop_session",
    "run_job",
    "run_jobs",
    "find_java",
    "is_local_master",
    "describe_failure",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_LOCAL_MASTER = re.compile(r"^local(\[(\*|\d+)(,\s*\d+)?\])?$")
_LOCK = threading.RLock()
_STATE: dict[str, Any] = {"session": None, "master": None}


@dataclass(frozen=True, slots=True)
class SparkSettings:
    """How to start Spark.

    Parameters
    ----------
    master : str
        ``local[*]`` (default), ``local[N]``, ``spark://host:port[,host:port]``,
        ``yarn``, ``k8s://...``.
    app_name : str
    shuffle_partitions : int
        ``spark.sql.shuffle.partitions`` (Spark's default 200 is far too many here).
    driver_memory : str
        ``spark.driver.memory`` (in local mode also the executors' memory).
    connect_timeout_s : float
        TCP probe of ``spark://`` masters.
    start_timeout_s : float
        Session start plus a one-task probe job.
    conf : tuple of (key, value)
        Extra Spark settings, applied last (they win).
    """

    master: str = "local[*]"
    app_name: str = "songmine"
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    connect_timeout_s: float = 5.0
    start_timeout_s: float = 180.0
    conf: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.master, str) or not self.master.strip():
            raise ParameterError(f"master={self.master!r} must be a non-empty string")
        if self.master.startswith("local") and not _LOCAL_MASTER.match(self.master):
            raise ParameterError(f"master={self.master!r} is not local, local[N], local[*] or local[N,F]")
        if self.shuffle_partitions < 1:
            raise ParameterError(f"shuffle_partitions={self.shuffle_partitions} must be >= 1")
        if not self.connect_timeout_s > 0 or not self.start_timeout_s > 0:
            raise ParameterError(
                f"timeouts must be > 0, got connect_timeout_s={self.connect_timeout_s}, "
                f"start_timeout_s={self.start_timeout_s}"
            )

    def spark_conf(self) -> dict[str, str]:
        conf = {
            "spark.app.name": self.app_name,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.driver.memory": self.driver_memory,
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
        }
        if is_local_master(self.master):
            # (on a cluster Spark's default, the executors' cores, is the right one)
            conf["spark.default.parallelism"] = str(max(2, self.shuffle_partitions))
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf.update(dict(self.conf))
        return conf


def is_local_master(master: str) -> bool:
    """Whether ``master`` runs everything in this process (``local``, ``local[N]``, ``local[*]``)."""
    return bool(_LOCAL_MASTER.match(master))


def find_java() -> str:
    """Path of the ``java`` Spark will use (``$JAVA_HOME/bin/java``, else ``java`` on PATH).

    Raises
    ------
    EngineError
        No Java: Spark needs Java 17 (or 21).
    """
    home = os.environ.get("JAVA_HOME")
    if home:
        java = os.path.join(home, "bin", "java")
        if os.access(java, os.X_OK):
            return java
        raise EngineError(f"JAVA_HOME={home} has no executable bin/java: Spark needs Java 17")
    java = shutil.which("java")
    if java is None:
        raise EngineError(
            "Java not found (no JAVA_HOME, no java on PATH): Spark needs Java 17 "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java


def _probe_standalone(master: str, timeout_s: float) -> None:
    """Fail fast when no ``spark://`` master address accepts a TCP connection."""
    hosts = master[len("spark://") :].split(",")
    errors = []
    for hp in hosts:
        host, _, port = hp.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ParameterError(f"master={master!r}: expected spark://host:port[,host:port]")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or type(exc).__name__}")
    raise EngineError(f"Spark master {master} not reachable within {timeout_s:g} s ({'; '.join(errors)})")


def get_session(
    master: str | None = None, *, settings: SparkSettings | None = None, conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The shared SparkSession for ``master``, started on first use.

    Parameters
    ----------
    master : str or None
        Overrides ``settings.master``. With neither ``master``, ``settings`` nor
        ``conf``: the running shared session whatever its master, else
        ``local[*]``.
    settings : SparkSettings or None
    conf : mapping or None
        Extra Spark settings (merged into ``settings.conf``).

    Raises
    ------
    EngineError
        pyspark not installed, no Java, master unreachable, or Spark not up within
        ``settings.start_timeout_s``.
    """
    with _LOCK:
        if master is None and settings is None and not conf:
            session = _STATE["session"]
            if session is not None and _alive(session):
                return session  # "whatever is running": the shared session, any master
    settings = settings or SparkSettings()
    if master is not None or conf:
        settings = SparkSettings(
            master=master or settings.master,
            app_name=settings.app_name,
            shuffle_partitions=settings.shuffle_partitions,
            driver_memory=settings.driver_memory,
            connect_timeout_s=settings.connect_timeout_s,
            start_timeout_s=settings.start_timeout_s,
            conf=settings.conf + tuple((conf or {}).items()),
        )
    with _LOCK:
        session = _STATE["session"]
        if session is not None and _STATE["master"] == settings.master and _alive(session):
            return session
        _precheck(settings)  # fail fast (no Java, master unreachable) before stopping a working session
        if session is not None:
            log.info("stopping the Spark session on %s to start one on %s", _STATE["master"], settings.master)
            stop_session()
        session = _start(settings)
        _STATE["session"], _STATE["master"] = session, settings.master
        return session


def _alive(session) -> bool:
    try:
        return not session.sparkContext._jsc.sc().isStopped()
    except Exception:  # noqa: BLE001  (a dead gateway raises anything)
        return False


def _precheck(settings: SparkSettings) -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise EngineError("pyspark is not installed: pip install 'songmine[spark]'") from None
    find_java()
    if settings.master.startswith("spark://"):
        _probe_standalone(settings.master, settings.connect_timeout_s)


def _start(settings: SparkSettings) -> SparkSession:
    # pyspark warns on every DataFrame→pandas path that pandas 3 is "not fully supported";
    # songmine's Spark code moves data through Arrow/numpy, not pandas.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    from pyspark.sql import SparkSession

    if is_local_master(settings.master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    builder = SparkSession.builder.master(settings.master)
    for key, value in settings.spark_conf().items():
        builder = builder.config(key, value)
    box: dict[str, Any] = {}

    def start() -> None:
        try:
            box["session"] = builder.getOrCreate()
        except BaseException as exc:  # noqa: BLE001  (reported in the caller's thread)
            box["error"] = exc

    thread = threading.Thread(target=start, name="songmine-spark-start", daemon=True)
    thread.start()
    thread.join(settings.start_timeout_s)
    if thread.is_alive():
        raise EngineError(f"Spark did not start on master {settings.master} within {settings.start_timeout_s:g} s")
    if "error" in box:
        raise EngineError(
            f"Spark could not start on master {settings.master}: {describe_failure(box['error'])}"
        ) from None
    session = box["session"]
    session.sparkContext.setLogLevel("ERROR")
    # A one-task job proves that executors exist and run our Python.
    try:
        run_job(
            session,
            lambda: session.sparkContext.parallelize([1], 1).map(lambda x: x + 1).collect(),
            timeout_s=settings.start_timeout_s,
            what="the start-up probe job",
        )
    except EngineError:
        _stop_quietly(session)
        raise
    log.info("Spark %s started on %s", session.version, settings.master)
    return session


def run_job(
    session, action: Callable[[], T], *, timeout_s: float | None, what: str = "a Spark job", group: str | None = None
) -> T:
    """Run ``action`` (something that triggers Spark jobs) with a time bound and clear errors.

    The action runs in its own thread under a job group (``group``, default a
    fresh one); on timeout the group is cancelled and :class:`EngineError`
    raised. Failures of tasks (a worker's Python exception, a lost executor)
    become ``EngineError`` with their first meaningful line.
    """
    sc = session.sparkContext
    group = group or f"songmine-{uuid.uuid4().hex[:12]}"
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            sc.setJobGroup(group, what, interruptOnCancel=True)
            box["result"] = action()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=target, name="songmine-spark-job", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        try:
            sc.cancelJobGroup(group)
        except Exception:  # noqa: BLE001
            pass
        raise EngineError(f"{what} did not finish within {timeout_s:g} s (cancelled)")
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, (EngineError, ParameterError)):
            raise exc
        raise EngineError(f"{what} failed: {describe_failure(exc)}") from exc
    return box["result"]


def run_jobs(
    session, actions: Iterable[Callable[[], T]], *, inflight: int, timeout_s: float | None, what: str = "a Spark job"
) -> Iterator[tuple[int, T | EngineError]]:
    """Run many small jobs, at most ``inflight`` at once; yield ``(i, result)`` as each finishes.

    For work whose results must stream back to the driver in bounded memory
    (one ``collect`` would hold them all; ``toLocalIterator`` runs one
    partition at a time): each action is one job, bounded by ``timeout_s``;
    a job that fails or times out yields its :class:`EngineError` instead of a
    result (the caller decides: retry smaller, or report). Closing the
    generator cancels the jobs still running.
    """
    if inflight < 1:
        raise ParameterError(f"inflight={inflight} must be >= 1")
    sc = session.sparkContext
    run = f"songmine-{uuid.uuid4().hex[:8]}"
    pending = iter(enumerate(actions))
    futures: dict[cf.Future, int] = {}

    def one(i: int, action: Callable[[], T]) -> T | EngineError:
        try:
            return run_job(session, action, timeout_s=timeout_s, what=f"{what} (job {i + 1})", group=f"{run}-{i}")
        except EngineError as exc:
            return exc

    ex = cf.ThreadPoolExecutor(inflight, thread_name_prefix="songmine-spark-jobs")
    try:
        while True:
            while len(futures) < inflight:
                nxt = next(pending, None)
                if nxt is None:
                    break
                futures[ex.submit(one, *nxt)] = nxt[0]
            if not futures:
                return
            done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                yield futures.pop(fut), fut.result()
    finally:
        for fut, i in futures.items():
            if not fut.cancel():
                _try(lambda i=i: sc.cancelJobGroup(f"{run}-{i}"))
        ex.shutdown(wait=False, cancel_futures=True)


def stop_session() -> None:
    """Stop the shared session (if any); the next :func:`get_session` starts a new one."""
    with _LOCK:
        session = _STATE["session"]
        _STATE["session"] = _STATE["master"] = None
        if session is not None:
            _stop_quietly(session)


def _stop_quietly(session) -> None:
    thread = threading.Thread(target=lambda: _try(session.stop), daemon=True)
    thread.start()
    thread.join(30)


def _try(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def describe_failure(exc: BaseException) -> str:
    """The most useful line of a (possibly Java-wrapped) exception message."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # a Python error raised on a worker: Spark embeds its traceback; keep the last "XxxError: ..." line
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", ln) and "py4j" not in ln.lower():
            return ln[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]
