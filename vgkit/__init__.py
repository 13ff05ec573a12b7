"""vgkit: long-form image-to-video from shot cards, chained clips and a deterministic stitch.

The public API is this module's names; everything else lives in the stage packages (``spec``,
``hub``, ``models``, ``generate``, ``supervise``, ``records``, ``finish``, ``evaluate``, ``remote``,
``host``, ``lab``, ``cost``, ``scale``) and may change. Names resolve lazily: importing vgkit imports
no torch and loads no model; ``vgkit.run_job`` imports the generation stage when first used.

    import vgkit
    spec = vgkit.load_spec("params/demo.yaml")
    result = vgkit.run_job("params/demo.yaml", model="wan22-tiny", out=Path("runs/demo"))
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # the spec and its plan
    "RunSpec": "vgkit.spec.schema",
    "load_spec": "vgkit.spec.schema",
    "make_plan": "vgkit.spec.plan",
    "StitchSettings": "vgkit.spec.stitch_settings",
    # models
    "ModelAdapter": "vgkit.models",
    "adapter": "vgkit.models",
    "model_names": "vgkit.models",
    "register_model": "vgkit.models",
    # generation
    "JobResult": "vgkit.generate.runner",
    "plan_job": "vgkit.generate.runner",
    "run_job": "vgkit.generate.runner",
    # records
    "ClipLog": "vgkit.records.schema",
    "Event": "vgkit.records.events",
    "Manifest": "vgkit.records.schema",
    "Plan": "vgkit.records.schema",
    "read_events": "vgkit.records.events",
    "read_logs": "vgkit.records.schema",
    "read_manifest": "vgkit.records.schema",
    "read_plan": "vgkit.records.schema",
    # finishing
    "extract_bundle": "vgkit.finish.bundle",
    "restitch": "vgkit.finish.verify",
    "stitch_run": "vgkit.finish.stitch",
    "verify": "vgkit.finish.verify",
    "write_bundle": "vgkit.finish.pack",
    # comparing runs
    "sweep": "vgkit.evaluate.sweep",
    "write_report": "vgkit.evaluate.report.write",
    # errors
    "ArtifactError": "vgkit.errors",
    "SpecError": "vgkit.errors",
    "VgkitError": "vgkit.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vgkit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see (``x as x``: re-exported)
    from vgkit.errors import ArtifactError as ArtifactError
    from vgkit.errors import SpecError as SpecError
    from vgkit.errors import VgkitError as VgkitError
    from vgkit.evaluate.report.write import write_report as write_report
    from vgkit.evaluate.sweep import sweep as sweep
    from vgkit.finish.bundle import extract_bundle as extract_bundle
    from vgkit.finish.pack import write_bundle as write_bundle
    from vgkit.finish.stitch import stitch_run as stitch_run
    from vgkit.finish.verify import restitch as restitch
    from vgkit.finish.verify import verify as verify
    from vgkit.generate.runner import JobResult as JobResult
    from vgkit.generate.runner import plan_job as plan_job
    from vgkit.generate.runner import run_job as run_job
    from vgkit.models import ModelAdapter as ModelAdapter
    from vgkit.models import adapter as adapter
    from vgkit.models import model_names as model_names
    from vgkit.models import register_model as register_model
    from vgkit.records.events import Event as Event
    from vgkit.records.events import read_events as read_events
    from vgkit.records.schema import (
        ClipLog as ClipLog,
    )
    from vgkit.records.schema import (
        Manifest as Manifest,
    )
    from vgkit.records.schema import (
        Plan as Plan,
    )
    from vgkit.records.schema import (
        read_logs as read_logs,
    )
    from vgkit.records.schema import (
        read_manifest as read_manifest,
    )
    from vgkit.records.schema import (
        read_plan as read_plan,
    )
    from vgkit.spec.plan import make_plan as make_plan
    from vgkit.spec.schema import RunSpec as RunSpec
    from vgkit.spec.schema import load_spec as load_spec
    from vgkit.spec.stitch_settings import StitchSettings as StitchSettings
