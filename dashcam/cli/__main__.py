"""``python -m dashcam.cli``: the ``dashcam`` command line (every command registered; :mod:`dashcam.cli`)."""

from dashcam.cli import app

if __name__ == "__main__":
    app()
