"""Persistent worker processes: started once (imports paid once), each owned by one parent
thread, killed and replaced when an input crashes it or runs past the time limit.

concurrent.futures' pools cannot say which input killed a worker (a crash breaks every future
in flight) nor stop a running task, so each worker here has its own pipe and one task at a time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.fuzz.worker import FAILED, worker_main

GB = 2**30
# Address space per worker. TensorFlow maps about 1.5 GB before it loads anything.
MEMORY_LIMITS = {"image": 4 * GB, "model": 6 * GB, "card": 2 * GB}
TIME_LIMIT = 10.0  # seconds for one load
STARTUP_LIMIT = 240.0  # seconds for a worker to import its loaders (TensorFlow, on a busy machine)
TASKS_PER_WORKER = {"image": 400, "model": 150, "card": 1000}


class WorkerError(RuntimeError):
    """A worker could not even start: the harness is broken, not the loader."""


class Worker:
    def __init__(self, kind: str, log_dir: Path, slot: int, *, time_limit: float = TIME_LIMIT) -> None:
        self.kind = kind
        self.log_path = log_dir / f"worker-{kind}-{slot}.log"
        self.time_limit = time_limit
        self.context = multiprocessing.get_context("forkserver")
        self.process: Any = None
        self.conn: Any = None
        self.tasks = 0
        self.restarts = 0

    def start(self) -> None:
        parent, child = self.context.Pipe()
        self.process = self.context.Process(
            target=worker_main,
            args=(child, self.kind, MEMORY_LIMITS[self.kind], str(self.log_path)),
            daemon=False,  # the loaders start children of their own (an .h5 model's check); stop() ends it
        )
        self.process.start()
        child.close()
        self.conn, self.tasks = parent, 0
        if not parent.poll(STARTUP_LIMIT):
            self.stop()
            raise WorkerError(f"a {self.kind} worker did not start within {STARTUP_LIMIT:.0f} s")
        try:
            parent.recv()
        except EOFError as error:
            self.process.join(5)
            code = self.process.exitcode
            self.stop()
            message = f"a {self.kind} worker died while starting (exit {code}): {self._log_tail()}"
            raise WorkerError(message) from error

    def run(self, path: Path) -> dict[str, Any]:
        """Load `path` in the worker; a crash or a hang is a FAILED outcome and a new worker."""
        if self.process is None or self.tasks >= TASKS_PER_WORKER[self.kind]:
            self.stop()
            self.start()
        self.tasks += 1
        started = time.monotonic()
        try:
            self.conn.send(str(path))
            if self.conn.poll(self.time_limit):
                result = self.conn.recv()
                result["seconds"] = time.monotonic() - started
                return result
            failure, error = "hang", f"no answer within {self.time_limit:.0f} s"
        except (EOFError, OSError, BrokenPipeError):
            self.process.join(5)
            code = self.process.exitcode
            what = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
            failure, error = "crash", f"worker died ({what}): {self._log_tail()}"
        seconds = time.monotonic() - started
        self.restarts += 1
        self.stop()
        return {"outcome": FAILED, "failure": failure, "error": error, "where": "", "seconds": seconds}

    def _log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        return " | ".join(lines[-2:])[-300:]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(0.5 if self.tasks else 0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the worker's group: it and its children
        self.process.join(5)
        self.conn.close()
        self.process, self.conn = None, None
