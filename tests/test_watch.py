"""``dashcam watch``: real watchdog observers (inotify and polling), a real Prefect server on
127.0.0.1, real clips, real SQLite results databases. No worker runs: the watcher's job ends when
the flow run is *scheduled*, so the tests count the runs of the deployment.

Each test gets its own deployment of a flow of its own (``ingest-<random>/ingest``, entrypoint
flows/ingest.py:ingest): the server scopes idempotency keys per flow, so the tests can reuse the
same clips without seeing each other's runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import copy_in_chunks, shared_dir
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_server import PrefectServer, free_port
from watchdog.events import FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent

from dashcam.video import compute_video_id
from dashcam.watch import CompletionTracker, FileFilter, WatchConfig, Watcher, idempotency_key

CLIPS = shared_dir() / "data/plates-video/TrainingSet/Categorie I"
CLIP = CLIPS / "ZVideo44.mp4"  # 940 KB
OTHERS = [CLIPS / n for n in ("Video10_2.avi", "Video171_2.avi", "Video179_2.avi", "ZVideo48.mp4")]
QUIET_S = 1.0
POLL_S = 0.3
BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------------------------
# fixtures and helpers


def _make_deployment() -> SimpleNamespace:
    flow = f"ingest-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(flow)
        dep_id = client.create_deployment(
            flow_id=flow_id, name="ingest", entrypoint="flows/ingest.py:ingest", work_pool_name="server"
        )
    return SimpleNamespace(name=f"{flow}/ingest", id=dep_id)


def _ensure_pool() -> None:
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="server", type="process"))


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).start()
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            _ensure_pool()
            yield server
    finally:
        server.stop()


@pytest.fixture
def deployment(prefect_api) -> SimpleNamespace:
    return _make_deployment()


@pytest.fixture(params=["inotify", "polling"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def nas(tmp_path) -> Path:
    d = tmp_path / "nas" / "raw"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="dashcam.watch")
    return caplog


def _config(nas: Path, deployment: str, db_url: str | None, mode: str = "inotify", **kw) -> WatchConfig:
    kw.setdefault("quiet_s", QUIET_S)
    return WatchConfig(
        dirs=[nas],
        deployment=deployment,
        database_url=db_url,
        polling=mode == "polling",
        poll_interval_s=POLL_S,
        tick_s=0.1,
        retry_initial_s=0.5,
        retry_max_s=2.0,
        **kw,
    )


@contextlib.contextmanager
def running(config: WatchConfig):
    """A Watcher in a thread (carrying this thread's Prefect settings), stopped at exit."""
    watcher = Watcher(config)
    stop, errors = threading.Event(), []
    ctx = contextvars.copy_context()

    def target():
        try:
            ctx.run(watcher.run, stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert watcher.ready.wait(30) or errors, "watcher did not start"
    try:
        yield watcher
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()
        if errors:
            raise errors[0]


def _runs(deployment_id) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
        )


def _wait(pred, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _wait_runs(deployment_id, n: int, timeout: float = 30) -> list:
    return _wait(lambda: (r := _runs(deployment_id)) and len(r) >= n and r, timeout, f"{n} flow run(s)")


def _settle(*watchers: Watcher, mode: str = "inotify") -> None:
    """Wait until no watcher has a pending file, long enough for any late event to have arrived."""
    time.sleep(QUIET_S + (POLL_S if mode == "polling" else 0) + 0.5)
    _wait(lambda: all(not w.tracker.pending() for w in watchers), 30, "no pending files")
    time.sleep(0.3)
    _wait(lambda: all(not w.tracker.pending() for w in watchers), 30, "no pending files")


def _messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "dashcam.watch")


def _insert_video_row(db_url: str, video_id: str, path: str, size: int) -> None:
    import sqlalchemy as sa

    from dashcam.db import VIDEOS, make_engine

    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(VIDEOS).values(
                id=video_id,
                path=path,
                size_bytes=size,
                duration_s=10.0,
                fps=25.0,
                width=640,
                height=480,
                codec="h264",
                recording_start=now,
                recording_start_source="mtime",
                camera=None,
                archive_path=None,
                n_events=0,
                ingested_at=now,
            )
        )
    engine.dispose()


# --------------------------------------------------------------------------------------------
# the state machine alone (fake clock, real files)


def test_filter_patterns_and_ignore_rules(tmp_path):
    root = str(tmp_path / "raw")
    f = FileFilter([root])
    for name in ("2024_0315_143022_0001F.MP4", "a.mov", "b.Ts", "c.avi", "sub/dir/d.mp4"):
        assert f.wanted(f"{root}/{name}"), name
    for name in (
        "a.mp4.part",
        "a.MP4.PART",
        "a.tmp",
        "~a.mp4",
        ".a.mp4",
        ".sync/a.mp4",
        "@eaDir/a.mp4/x.mp4",
        "#recycle/a.mp4",
        "a.jpg",
        "a.gpx",
        "a.mp4.crdownload",
        ".a.mp4.Xy12ab",
    ):
        assert not f.wanted(f"{root}/{name}"), name
    # the folder holding the root may itself have a dot: only components below the root count
    hidden = str(tmp_path / ".hidden" / "raw")
    assert FileFilter([hidden]).wanted(f"{hidden}/a.mp4")
    assert FileFilter([root], patterns=["*.mkv"]).wanted(f"{root}/x.MKV")


def test_tracker_quiet_period_writer_close_and_backoff(tmp_path):
    now = [100.0]
    t = CompletionTracker(quiet_s=30, stale_open_s=600, clock=lambda: now[0])
    p = tmp_path / "a.mp4"
    p.write_bytes(b"x" * 10)
    path = str(p)
    assert t.observe(path)
    t.wrote(path)
    now[0] += 29
    assert t.due() == []
    now[0] += 2  # quiet for 31 s but the writer still has it open
    assert t.due() == []
    with open(p, "ab") as f:  # more data: the quiet period restarts
        f.write(b"y")
    now[0] += 1
    assert t.due() == []
    t.closed(path)  # close restarts the quiet period too
    now[0] += 29
    assert t.due() == []
    now[0] += 2
    assert t.due() == [path]

    # a failed trigger keeps it pending, due again after the delay
    assert t.retry_later(path, 5) == 1
    assert t.due() == []
    now[0] += 5
    assert t.due() == [path]
    t.mark_done(path)
    assert t.pending() == [] and not t.observe(path)  # an event leaving it unchanged: nothing to do
    os.utime(p, ns=(1, 1))  # touched: pending again (the trigger's idempotency key keeps it one run)
    assert t.observe(path) and t.pending() == [path]

    # a lost close event: taken as complete after stale_open_s
    q = tmp_path / "b.mp4"
    q.write_bytes(b"z")
    t.wrote(str(q))
    now[0] += 599
    assert str(q) not in t.due()
    now[0] += 2
    assert str(q) in t.due()

    # empty files wait for data; deleted files are dropped
    e = tmp_path / "c.mp4"
    e.touch()
    t.observe(str(e))
    now[0] += 60
    assert str(e) not in t.due()
    e.unlink()
    t.due()
    assert str(e) not in t.pending()


# --------------------------------------------------------------------------------------------
# real watchdog + real Prefect server


def test_chunked_copy_gives_one_run_after_the_copy_ends(deployment, nas, sqlite_url, mode, logs):
    # inotify: pauses longer than the quiet period, with the file open: only the writer's close
    # marks it complete. Polling sees no close: pauses shorter than the quiet period.
    pause, quiet = (1.3, QUIET_S) if mode == "inotify" else (0.4, 1.5)
    dst = nas / "2024" / "2024_0315_143022_0001F.MP4"
    dst.parent.mkdir()
    with running(_config(nas, deployment.name, sqlite_url, mode, quiet_s=quiet)):
        t0 = time.monotonic()
        closed_at = copy_in_chunks(CLIP, dst, chunks=5, pause_s=pause)
        assert time.monotonic() - t0 >= 2.0  # "over several seconds"
        assert _runs(deployment.id) == []  # nothing before the copy ended
        [run] = _wait_runs(deployment.id, 1)
        assert run.created >= closed_at, (run.created, closed_at)
        _settle(mode=mode)
        assert len(_runs(deployment.id)) == 1
    assert run.name == dst.name
    assert run.parameters == {"videos": [str(dst)]}
    assert run.idempotency_key == idempotency_key(compute_video_id(dst))
    assert run.state.is_scheduled()
    assert "dashcam-watch" in run.tags
    msgs = _messages(logs)
    assert f"{dst}: new file" in msgs and "waiting for the copy to finish" in msgs
    assert f"{dst}: queued, flow run '{dst.name}'" in msgs


def test_touch_resave_duplicate_events_and_two_watchers_give_one_run(deployment, nas, sqlite_url, mode, logs):
    dst = nas / "clip.mp4"
    cfg = _config(nas, deployment.name, sqlite_url, mode)
    with running(cfg) as a, running(cfg) as b:
        shutil.copyfile(CLIP, dst)
        _wait_runs(deployment.id, 1)
        _settle(a, b, mode=mode)

        os.utime(dst)  # touched
        dst.write_bytes(CLIP.read_bytes())  # re-saved, identical content
        for _ in range(3):  # duplicate events, as a flaky share or a second notifier would send
            for ev in (
                FileCreatedEvent(str(dst)),
                FileModifiedEvent(str(dst)),
                FileClosedEvent(str(dst)),
                FileMovedEvent(str(nas / "gone.mp4"), str(dst)),
            ):
                a.handle_event(ev)
                b.handle_event(ev)
        _settle(a, b, mode=mode)
        runs = _runs(deployment.id)
    assert len(runs) == 1
    msgs = _messages(logs)
    assert msgs.count(f"{dst}: queued") == 1
    assert "already has flow run 'clip.mp4'" in msgs
    assert a.stats["queued"] + b.stats["queued"] == 1


def test_catch_up_after_downtime_skips_what_was_ingested(deployment, nas, sqlite_url, mode, logs):
    cfg = _config(nas, deployment.name, sqlite_url, mode)
    with running(cfg):
        pass  # the watcher ran and stopped; then files arrived
    new = []
    for i, src in enumerate(OTHERS[:3]):
        d = nas / f"day{i}"
        d.mkdir()
        new.append(d / src.name)
        shutil.copyfile(src, new[-1])
    # ingested earlier: one found by path and size (not even read), one only by its content id
    by_path = nas / "old.mp4"
    shutil.copyfile(CLIP, by_path)
    _insert_video_row(sqlite_url, "0" * 16, str(by_path), by_path.stat().st_size)
    by_id = nas / "renamed_copy.avi"
    shutil.copyfile(OTHERS[3], by_id)
    _insert_video_row(sqlite_url, compute_video_id(by_id), "/elsewhere/original.avi", by_id.stat().st_size)

    with running(cfg) as w:
        runs = _wait_runs(deployment.id, 3)
        _settle(w, mode=mode)
    assert sorted(r.parameters["videos"][0] for r in _runs(deployment.id)) == sorted(map(str, new))
    assert sorted(r.name for r in runs) == sorted(p.name for p in new)
    msgs = _messages(logs)
    assert "catch-up: 5 video file(s)" in msgs and "1 already ingested, 4 new to check" in msgs
    assert f"{by_id}: skipped, already ingested (video_id" in msgs

    logs.clear()
    with running(cfg) as w:  # restarted again: nothing new
        _settle(w, mode=mode)
    assert len(_runs(deployment.id)) == 3
    assert _messages(logs).count("already has flow run") == 3


def test_rename_into_place_and_part_file(deployment, nas, sqlite_url, mode, logs, tmp_path):
    staging = tmp_path / "staging"  # same file system, outside the watched tree
    staging.mkdir()
    with running(_config(nas, deployment.name, sqlite_url, mode)) as w:
        # a .part file written slowly, renamed when complete
        part = nas / "2024_0316_080000_0002F.MP4.part"
        copy_in_chunks(OTHERS[0], part, chunks=3, pause_s=0.4)
        time.sleep(QUIET_S + 0.5)
        assert _runs(deployment.id) == []  # the .part name is ignored however long it rests
        final = part.with_suffix("")
        part.rename(final)
        # a file finished elsewhere and moved into place (rename from outside the tree)
        shutil.copyfile(OTHERS[1], staging / "moved.avi")
        (nas / "sub").mkdir()
        os.rename(staging / "moved.avi", nas / "sub" / "moved.avi")
        runs = _wait_runs(deployment.id, 2)
        _settle(w, mode=mode)
    assert len(_runs(deployment.id)) == 2
    assert sorted((r.name, r.parameters["videos"][0]) for r in runs) == sorted(
        [(final.name, str(final)), ("moved.avi", str(nas / "sub" / "moved.avi"))]
    )
    assert ".part" not in _messages(logs)


def test_prefect_api_unreachable_is_retried_until_it_is_up(nas, sqlite_url, logs, tmp_path):
    port = free_port()
    server = PrefectServer(tmp_path / "late-prefect", port=port)
    try:
        with (
            temporary_settings({PREFECT_API_URL: server.api_url}),
            running(_config(nas, "ingest/ingest", sqlite_url)) as w,
        ):
            shutil.copyfile(CLIP, nas / "clip.mp4")
            _wait(lambda: "failed to trigger" in _messages(logs), 20, "a failed trigger")
            assert "will retry in" in _messages(logs)
            server.start()  # the API comes back (without the deployment at first)
            _ensure_pool()
            with get_client(sync_client=True) as client:  # register ingest/ingest for it
                flow_id = client.create_flow_from_name("ingest")
                dep_id = client.create_deployment(
                    flow_id=flow_id, name="ingest", entrypoint="flows/ingest.py:ingest", work_pool_name="server"
                )
            [run] = _wait_runs(dep_id, 1, timeout=30)
            _settle(w)
            assert len(_runs(dep_id)) == 1
    finally:
        server.stop()
    assert run.name == "clip.mp4"
    msgs = _messages(logs)
    assert "Prefect did not create the run" in msgs
    assert f"{nas / 'clip.mp4'}: queued" in msgs


def test_database_unreachable_is_retried(deployment, nas, tmp_path, logs):
    blocker = tmp_path / "db-folder"
    blocker.write_text("a file where the database folder should be")
    db_url = f"sqlite:///{blocker / 'dashcam.db'}"
    with running(_config(nas, deployment.name, db_url)) as w:
        shutil.copyfile(CLIP, nas / "clip.mp4")
        _wait(lambda: "the database is unreachable" in _messages(logs), 20, "a database failure")
        assert _runs(deployment.id) == []  # not triggered while the database cannot be asked
        blocker.unlink()  # the database becomes reachable
        _wait_runs(deployment.id, 1)
        _settle(w)
    assert len(_runs(deployment.id)) == 1
    assert "will retry in" in _messages(logs)


def test_cli_two_service_instances_on_one_tree(prefect_api, deployment, nas, sqlite_url, tmp_path):
    env = dict(
        prefect_api.env(),
        DASHCAM_DATABASE_URL=sqlite_url,
        DASHCAM_DEPLOYMENT=deployment.name,
        DASHCAM_WATCH_QUIET_S=str(QUIET_S),
    )
    procs, outs = [], []
    try:
        for i in range(2):
            outs.append(tmp_path / f"watch{i}.log")
            with open(outs[-1], "wb") as out:  # the child keeps its own copy of the descriptor
                procs.append(
                    subprocess.Popen(
                        [str(BIN / "dashcam"), "watch", str(nas), "--retry-initial-s", "0.5"],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        _wait(lambda: all("catch-up:" in p.read_text() for p in outs), 60, "both watchers started")
        for src in OTHERS[:2]:
            shutil.copyfile(src, nas / src.name)
        _wait_runs(deployment.id, 2)
        _wait(
            lambda: (
                sum(p.read_text().count(": queued") + p.read_text().count("already has flow run") for p in outs) >= 4
            ),
            30,
            "both watchers handled both files",
        )
        time.sleep(QUIET_S + 0.5)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
    text = "".join(p.read_text() for p in outs)
    assert codes == [0, 0], text
    assert len(_runs(deployment.id)) == 2
    assert text.count(": queued, flow run") == 2, text
    assert "stopped:" in text


def test_cli_watch_finds_the_deployed_results_db_in_the_blocks(prefect_api, deployment, nas, tmp_path):
    """``dashcam watch`` without --database-url on a deployed cluster: the results DB comes from
    the block ``dashcam deploy`` saved (dashcam.settings.resolve_database, as ``plates``/``web``),
    so a file that DB already has is skipped, not queued; the log says which DB and why."""
    from blocks.config import save_blocks_from_settings
    from dashcam.db import migrate
    from dashcam.settings import Settings

    deployed = f"sqlite:///{tmp_path / 'deployed.db'}"
    migrate(deployed)
    save_blocks_from_settings(Settings(database_url=deployed, data_dir=tmp_path / "data"), raw_dir=str(nas))
    done = nas / CLIP.name
    shutil.copyfile(CLIP, done)
    _insert_video_row(deployed, "1" * 16, str(done), done.stat().st_size)

    env = {k: v for k, v in prefect_api.env().items() if not k.startswith("DASHCAM_")}
    env.update(DASHCAM_DATA_DIR=str(tmp_path / "elsewhere"), DASHCAM_DEPLOYMENT=deployment.name)
    out_path = tmp_path / "watch.log"
    with open(out_path, "wb") as out:  # the child keeps its own copy of the descriptor
        p = subprocess.Popen(
            [str(BIN / "dashcam"), "watch", str(nas), "--quiet-s", str(QUIET_S)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: "already ingested" in out_path.read_text(), 90, "the catch-up to skip the ingested file")
        time.sleep(QUIET_S + 0.5)
    finally:
        p.send_signal(signal.SIGTERM)
        code = p.wait(30)
    text = out_path.read_text()
    assert code == 0, text
    assert f"results DB: {deployed} (Prefect block dashcam-results-database/dashcam on {prefect_api.api_url})" in text
    assert "1 already ingested, 0 new to check" in text, text
    assert _runs(deployment.id) == []
