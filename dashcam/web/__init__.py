"""The web UI (``dashcam web``): see :func:`dashcam.web.app.create_app` and docs/webui.md."""

from dashcam.web.app import create_app

__all__ = ["create_app"]
