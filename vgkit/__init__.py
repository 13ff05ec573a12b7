"""vgkit: long-form image-to-video from shot cards, chained clips and a deterministic stitch.

Importing vgkit imports no torch and loads no model; heavy parts are imported where used.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
