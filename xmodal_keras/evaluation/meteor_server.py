"""METEOR 1.5 in one reusable Java process: started on first use, restarted if it died,
killed by `close_meteor()` or at exit (loading its paraphrase table takes ~15 s).
"""

import atexit
import collections
import os
import threading
from typing import Any

from pycocoevalcap.meteor.meteor import Meteor


class _OwnedMeteor(Meteor):
    """pycocoevalcap's `Meteor`, closed explicitly by `_MeteorServer` instead of `__del__`.

    pycocoevalcap's `__del__` takes the scorer's lock (it deadlocks when a failed
    `compute_score` left the lock held) and kills the process even from a forked child that
    only inherited the object. Here closing is explicit and only the owning process does it.
    """

    def __del__(self) -> None:
        pass


class _MeteorServer:
    """Owns one METEOR 1.5 Java process, shared by all calls in this Python process."""

    # Generous: 10 min for the JVM start + paraphrase table, then 50 ms a caption.
    START_TIMEOUT_S = 600.0
    TIMEOUT_S_PER_IMAGE = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meteor: _OwnedMeteor | None = None
        self._owner_pid: int | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_thread: threading.Thread | None = None
        self._atexit_registered = False

    def score(self, gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> float:
        with self._lock:
            meteor = self._ensure_started()
            process = meteor.meteor_p
            timed_out = threading.Event()

            def kill_on_timeout() -> None:
                timed_out.set()
                process.kill()

            timeout = self.START_TIMEOUT_S + self.TIMEOUT_S_PER_IMAGE * len(gts)
            timer = threading.Timer(timeout, kill_on_timeout)
            timer.daemon = True
            timer.start()
            try:
                score, _ = meteor.compute_score(gts, res)
            except Exception as error:
                stderr = " | ".join(self._stderr_tail)
                self._close_locked()
                reason = f"timed out after {timeout:.0f} s" if timed_out.is_set() else "failed"
                raise RuntimeError(
                    f"METEOR (java -jar meteor-1.5.jar) {reason}: {error!r}. Java stderr: "
                    f"{stderr or '(empty)'}"
                ) from error
            finally:
                timer.cancel()
            return float(score)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _ensure_started(self) -> _OwnedMeteor:
        meteor = self._meteor
        if meteor is not None and self._owner_pid != os.getpid():
            # Forked child: the process belongs to the parent. Forget it without killing it.
            for stream in (meteor.meteor_p.stdin, meteor.meteor_p.stdout, meteor.meteor_p.stderr):
                stream.close()
            meteor.meteor_p.returncode = -1  # never signal or reap the parent's child
            self._meteor = meteor = None
        if meteor is not None and meteor.meteor_p.poll() is not None:
            self._close_locked()  # died: restart it
            meteor = None
        if meteor is None:
            meteor = _OwnedMeteor()
            self._meteor, self._owner_pid = meteor, os.getpid()
            self._stderr_tail.clear()
            # Drain stderr so a chatty JVM can never fill the pipe and block.
            self._stderr_thread = threading.Thread(
                target=self._drain_stderr,
                args=(meteor.meteor_p.stderr,),
                name="meteor-stderr",
                daemon=True,
            )
            self._stderr_thread.start()
            if not self._atexit_registered:
                atexit.register(self.close)
                self._atexit_registered = True
        return meteor

    def _drain_stderr(self, stream) -> None:
        try:
            for line in iter(stream.readline, b""):
                self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass

    def _close_locked(self) -> None:
        meteor, self._meteor = self._meteor, None
        if meteor is None:
            return
        process = meteor.meteor_p
        if self._owner_pid == os.getpid():
            try:
                process.stdin.close()
            except OSError:
                pass
            process.kill()
            process.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
            self._stderr_thread = None
        process.stdout.close()
        process.stderr.close()


SHARED_METEOR = _MeteorServer()


def close_meteor() -> None:
    """Stop the shared METEOR Java process (frees its ~1-2 GB); the next call restarts it.

    Example:

    >>> close_meteor()
    """
    SHARED_METEOR.close()
