"""dashcam-pipeline: self-hosted ALPR for dashcam footage.

The pure pipeline logic lives in this package and runs without a Prefect server; the Prefect
wrappers live in the top-level ``tasks/`` and ``flows/`` packages. See docs/architecture.md.
"""

__version__ = "0.1.0"
