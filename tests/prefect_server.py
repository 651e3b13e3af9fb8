"""Re-export of the Prefect server helper that infra/cluster.py provides (tests and developers share it)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))

from cluster import LocalCluster, PrefectServer, fetch, free_port  # noqa: E402,F401
