"""Child processes that die with us: ``ffmpeg``/``ffprobe`` and the local Prefect API server.

Every process the pipeline starts goes through :func:`popen` / :func:`run` (or
:func:`ffprobe_json` for ``ffprobe -of json``), which set the Linux parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``, see prctl(2)) in the child before it ``exec``\\ s. So a
``kill -9`` of ``dashcam ingest`` (or of a worker) takes its ffmpeg, ffprobe and API server with it
instead of leaving them running as orphans.

Caveat (documented in prctl(2)): the signal fires when the *thread* that forked the child exits,
not only when the process does. Our callers fork from the thread that also waits for the child
(``subprocess.run``, the consumer of :func:`dashcam.video.iter_frames`, the main thread for the
API server), so the forking thread always outlives the child it needs. Do not start a long-lived
child from a short-lived thread with these helpers.

On platforms without ``prctl`` (macOS, Windows) the helpers behave like plain ``subprocess``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from typing import Any

__all__ = ["die_with_parent", "ffprobe_json", "popen", "run", "ProbeError"]

_PR_SET_PDEATHSIG = 1
_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl  # noqa: B018 - probe the symbol once, in the parent
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        _libc = None


def die_with_parent(parent_pid: int | None = None) -> None:
    """``preexec_fn``: SIGKILL this (child) process when its parent thread/process dies (Linux).

    ``parent_pid``: the parent's pid as seen before the fork; when the parent already died
    between fork and ``prctl`` (so the signal can no longer fire), the child kills itself.
    No-op where ``prctl`` is unavailable.
    """
    if _libc is None:
        return
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def _preexec(kwargs: dict[str, Any]) -> dict[str, Any]:
    if _libc is None or os.name != "posix":
        return kwargs
    own = kwargs.pop("preexec_fn", None)
    parent = os.getpid()

    def preexec() -> None:
        die_with_parent(parent)
        if own is not None:
            own()

    kwargs["preexec_fn"] = preexec
    return kwargs


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(args, **kwargs)`` whose child is SIGKILLed when we die (Linux)."""
    return subprocess.Popen(args, **_preexec(kwargs))


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(args, **kwargs)`` whose child is SIGKILLed when we die (Linux)."""
    return subprocess.run(args, **_preexec(kwargs))


class ProbeError(Exception):
    """ffprobe exited non-zero; ``stderr`` (bytes) holds what it said (like ``ffmpeg.Error``)."""

    def __init__(self, cmd: list[str], stderr: bytes):
        super().__init__(f"{cmd[0]} error (see stderr output for detail)")
        self.stderr = stderr


def ffprobe_json(target: str, cmd: str = "ffprobe", **kwargs: Any) -> dict:
    """``ffprobe -show_format -show_streams -of json`` of ``target`` as a dict, as
    ``ffmpeg.probe(target, cmd=cmd, **kwargs)`` does (``kwargs`` become ``-key value`` options),
    but started through :func:`run` so the probe dies with us.

    Raises:
        ProbeError: ffprobe failed (``.stderr`` has its message).
        FileNotFoundError: ``cmd`` is not on PATH.
    """
    args = [cmd, "-show_format", "-show_streams", "-of", "json"]
    for k, v in kwargs.items():
        args += [f"-{k}", str(v)]
    args.append(target)
    res = run(args, stdin=subprocess.DEVNULL, capture_output=True)
    if res.returncode != 0:
        raise ProbeError(args, res.stderr)
    return json.loads(res.stdout.decode("utf-8", "replace"))
