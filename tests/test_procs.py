"""Children die with their parent (dashcam.procs) and stale temp files are swept, but only dead
writers' (dashcam.archive.sweep_stale_tmp). Real processes, real SIGKILL, real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from dashcam.archive import sweep_stale_tmp

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, text=True, **kw
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_child_started_with_procs_dies_with_its_killed_parent():
    parent = _python("""
        import subprocess, sys, time
        from dashcam import procs
        kid = procs.popen(["sleep", "300"])
        plain = subprocess.Popen(["sleep", "300"])
        print(kid.pid, plain.pid, flush=True)
        time.sleep(300)
    """)
    kid = plain = None
    try:
        kid, plain = (psutil.Process(int(x)) for x in parent.stdout.readline().split())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        _gone, alive = psutil.wait_procs([kid], timeout=10)
        assert not alive  # died with the parent
        assert plain.is_running() and plain.status() != psutil.STATUS_ZOMBIE  # the control: orphaned
    finally:
        # only what this test started: other children of pytest (the session's PostgreSQL
        # server, a Prefect server) must live on
        parent.kill()
        for p in (kid, plain):
            try:
                if p is not None:
                    p.kill()
            except psutil.Error:
                pass


def _age(p: Path, seconds: float = 120) -> None:
    t = time.time() - seconds
    os.utime(p, (t, t))


def test_sweep_removes_only_dead_writers_temp_files(tmp_path):
    dst = tmp_path / "archive" / "vid" / "video_720p.mp4"
    writer = _python(f"""
        import time
        from dashcam.archive import _atomic_write
        def fill(f):
            f.write(b"x" * 1000); f.flush()
            print("writing", flush=True)
            time.sleep(300)
        _atomic_write({str(dst)!r}, fill)
    """)
    try:
        assert writer.stdout.readline().strip() == "writing"
        [tmp] = list(dst.parent.glob(".video_720p.mp4.*.tmp"))
        foreign = dst.parent / ".notes.txt.tmp"  # not one of our names
        foreign.write_text("someone else's")
        young = dst.parent / ".thumb.jpg.0123abcd.tmp"  # ours, dead writer, but just written
        young.write_bytes(b"y")
        _age(tmp)
        _age(foreign)

        assert sweep_stale_tmp(tmp_path / "archive") == []  # the live writer holds its lock
        assert tmp.exists()

        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        assert sweep_stale_tmp(tmp_path / "archive") == [tmp]  # lock gone with the writer
        assert not tmp.exists() and foreign.exists() and young.exists()
        _age(young)
        assert sweep_stale_tmp(tmp_path / "archive", tmp_path / "missing") == [young]
    finally:
        if writer.poll() is None:
            writer.kill()
