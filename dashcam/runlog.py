"""Console logging of deployed flow runs that survives the death of their worker.

A Prefect process worker starts each flow run as a child process whose stdout/stderr are pipes
into the worker (``stream_output``). When the worker dies (SIGKILL, OOM) and its run lives on,
the next log line hits a closed pipe: Prefect's console handler prints through a rich
``Console``, whose ``on_broken_pipe`` turns the ``BrokenPipeError`` into ``SystemExit(1)``, and
the run ends Crashed with "Execution was aborted by Python system exit call" - killed by its
own logging, although its work, its heartbeats and its API logs were fine.

:class:`PipeSafeConsoleHandler` replaces that console handler in deployed runs (set by
``PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS`` in the deployments' job variables,
deployments/prefect.yaml): on a broken pipe it points file descriptors 1 and 2 at /dev/null
(so later prints and tracebacks do not fail either), drops the console, logs one warning that
names the dead worker to the run's Prefect API log, and lets the run go on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from prefect.logging.handlers import PrefectConsoleHandler
from prefect.logging.highlighters import PrefectConsoleHighlighter
from prefect.settings import PREFECT_LOGGING_COLORS, PREFECT_LOGGING_MARKUP
from rich.console import Console
from rich.highlighter import NullHighlighter
from rich.theme import Theme


class _PipeSafeConsole(Console):
    def __init__(self, *args, on_broken=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._on_broken = on_broken

    def on_broken_pipe(self) -> None:  # rich's default: dup2(devnull, stdout) + SystemExit(1)
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(devnull, stream.fileno())
        os.close(devnull)
        if self._on_broken:
            self._on_broken()


class PipeSafeConsoleHandler(PrefectConsoleHandler):
    """:class:`prefect.logging.handlers.PrefectConsoleHandler` that does not end the process
    when its stream's reader (the worker) is gone; same constructor arguments (logging.yml)."""

    def __init__(
        self,
        stream=None,
        highlighter=PrefectConsoleHighlighter,
        styles: dict[str, str] | None = None,
        level: int | str = logging.NOTSET,
    ):
        super().__init__(stream=stream, highlighter=highlighter, styles=styles, level=level)
        self.worker_pid = os.getppid()  # a deployed run's parent is the worker that started it
        self.pipe_broken = False
        self._reported = False
        styled = PREFECT_LOGGING_COLORS.value()
        self.console = _PipeSafeConsole(  # as PrefectConsoleHandler builds it, plus on_broken
            highlighter=highlighter() if styled else NullHighlighter(),
            theme=Theme(styles, inherit=False) if styled else Theme(inherit=False),
            file=self.stream,
            markup=PREFECT_LOGGING_MARKUP.value(),
            on_broken=self._broke,
        )

    def _broke(self) -> None:
        self.pipe_broken = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.pipe_broken:
            return
        super().emit(record)
        if self.pipe_broken and not self._reported:
            self._reported = True
            self._report()

    def _report(self) -> None:
        gone = os.getppid() != self.worker_pid
        msg = (
            f"the worker that started this flow run (pid {self.worker_pid}) died: its console output is "
            f"gone (broken pipe); the run goes on and logs to the Prefect API only"
            if gone
            else "this flow run's console output is gone (broken pipe); the run goes on and logs "
            "to the Prefect API only"
        )
        try:
            from prefect import get_run_logger

            get_run_logger().warning(msg)
        except Exception:  # noqa: BLE001 - outside a run context there is no API log to write to
            logging.getLogger("prefect.dashcam").warning(msg)
