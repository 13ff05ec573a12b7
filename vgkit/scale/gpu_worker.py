"""The long-lived worker of a scaled-out run: one per GPU, one loaded pipeline, cells served in turn.

``GpuWorker`` is a plain class; the scheduler (vgkit.scale.scheduler) makes it a Ray actor with
``num_gpus=1``, so Ray gives it one GPU (``CUDA_VISIBLE_DEVICES``). For its whole life it holds
vgkit's lock of that GPU (vgkit.supervise.lock), so a plain ``vgkit run`` on the same GPU is refused while
it lives, and the kernel frees the lock the moment the worker dies.

``run`` serves one cell through vgkit's own job path (``vgkit.generate.runner.run_job``: plan, checks,
chained clips with their deadlines checked at every step, stitch) in a scratch folder of the worker's
node, started afresh from the clips that already came home. It is a generator: it yields the
run's events as they happen (each progress line as its structured event, vgkit.records.events)
and each finished clip as a payload (vgkit.scale.transfer) the moment its log is written.
The pipeline stays loaded for the next cell of the same model (same snapshot, preset, speed
options and steps); another model replaces it.
"""

from __future__ import annotations

import gc
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgkit.records.artifacts import RunLayout
from vgkit.records.events import Event as ProgressEvent
from vgkit.records.events import note
from vgkit.scale.cells import CellTask, write_task
from vgkit.scale.transfer import ClipPayload, clip_payload, commit_payload

if TYPE_CHECKING:
    from vgkit.generate.generator import ClipGenerator
    from vgkit.models import ModelAdapter
    from vgkit.supervise.guard import Deadlines

__all__ = ["GpuWorker", "scratch_root"]

Event = dict[str, Any]


def scratch_root() -> Path:
    """Where workers keep their runs in progress on their node: ``VGKIT_RAY_SCRATCH``, else
    ``<temp dir>/vgkit-ray-<uid>``."""
    explicit = os.environ.get("VGKIT_RAY_SCRATCH")
    return Path(explicit) if explicit else Path(tempfile.gettempdir()) / f"vgkit-ray-{os.getuid()}"


class GpuWorker:
    """One GPU's worker: holds the GPU's device lock and at most one loaded pipeline."""

    def __init__(self, *, sweep_id: str) -> None:
        import ray

        from vgkit.settings import apply_env_file, visible_gpu
        from vgkit.supervise.lock import acquire_device_lock, device_lock_name

        apply_env_file()  # the node's HF cache default, as every vgkit entry point (before any HF import)
        self.pid = os.getpid()
        self.node = str(ray.util.get_node_ip_address())
        self.gpu = visible_gpu()
        self.scratch = scratch_root() / sweep_id
        self.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Refuses at once (DeviceBusyError) if another vgkit job holds this GPU.
        self._lock = acquire_device_lock(device_lock_name("cuda"), run_dir=self.scratch, progress=lambda _: None)
        self._generator: ClipGenerator | None = None
        self._generator_key: tuple[str, ...] | None = None
        self.loads: list[str] = []

    def close(self) -> None:
        """Delete this sweep's scratch folder on the node (vgkit's own) and free the GPU's lock."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        self._lock.release()

    def run(self, task: CellTask, home: list[ClipPayload], deadlines: Deadlines) -> Iterator[Event]:
        """Serve one cell; yield its events: ``start`` (pid, node address, GPU, the model loaded
        or None, every model loaded so far), ``line``, ``load``, ``clip``, then ``done`` or ``error``."""
        events: queue.Queue[Event] = queue.Queue()
        thread = threading.Thread(target=self._serve, args=(task, home, deadlines, events.put), daemon=True)
        thread.start()
        loaded = self._generator.model.name if self._generator is not None else None
        where = {"pid": self.pid, "node": self.node, "gpu": self.gpu, "loaded": loaded, "loads": list(self.loads)}
        yield {"kind": "start", "t": time.time(), **where}
        while True:
            event = events.get()
            yield event
            if event["kind"] in ("done", "error"):
                break
        thread.join()

    def _serve(self, task: CellTask, home: list[ClipPayload], deadlines: Deadlines, emit: Any) -> None:
        from vgkit.errors import VgkitError

        folder = self.scratch / task.cell_name
        shutil.rmtree(folder, ignore_errors=True)  # only the clips that came home count
        try:
            spec_file = write_task(task, folder / "inputs")
            layout = RunLayout(folder / "run")
            for payload in home:
                commit_payload(layout, payload)
            if home:
                emit(_line(note(f"resuming after {len(home)} clip(s) that came home")))

            def on_clip(index: int, _path: Path) -> None:
                emit({"kind": "clip", "t": time.time(), "payload": clip_payload(layout, index), "plan": _plan(layout)})

            self._run_job(spec_file, task.model, layout.root, deadlines, emit, on_clip)
            emit({"kind": "done", "t": time.time(), "plan": _plan(layout)})
        except Exception as exc:  # reported to the driver, which records the cell as failed
            code = exc.exit_code if isinstance(exc, VgkitError) else None
            error = {"error_class": type(exc).__name__, "message": str(exc), "exit_code": code}
            emit({"kind": "error", "t": time.time(), **error})
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run_job(self, spec_file: Path, model: str, out: Path, deadlines: Deadlines, emit: Any, on_clip: Any) -> None:
        from vgkit.generate.generator import InProcessGenerator
        from vgkit.generate.runner import plan_job, run_job

        spec, _, plan = plan_job(spec_file, model=model)
        preset, speed, steps = str(plan.preset["name"]), spec.speed, plan.steps

        def generator_for(adapter: ModelAdapter, snapshot: Path, device: str) -> ClipGenerator:
            key = (adapter.name, str(snapshot), device, preset, repr(speed), str(steps))
            if self._generator is not None and self._generator_key == key:
                emit(_line(note(f"reusing the {adapter.name} pipeline already loaded on this GPU")))
                self._generator.load_s = 0.0  # this run loaded nothing
                return self._generator
            self._drop_generator()
            generator = InProcessGenerator(adapter, snapshot, device=device, preset=preset, speed=speed, steps=steps)
            self._generator, self._generator_key = generator, key
            self.loads.append(adapter.name)
            emit({"kind": "load", "t": time.time(), "model": adapter.name, "load_s": round(generator.load_s, 3)})
            return generator

        run_job(
            spec_file,
            model=model,
            out=out,
            progress=lambda event: emit(_line(event)),
            lock=False,  # this worker holds the GPU's lock for its whole life
            make_generator=generator_for,
            on_clip=on_clip,
            clip_timeout_s=deadlines.clip_timeout_s,
            run_timeout_s=deadlines.run_timeout_s,
            run_started_at=deadlines.run_started_at,
        )

    def _drop_generator(self) -> None:
        if self._generator is None:
            return
        device = self._generator.device
        self._generator = self._generator_key = None
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _line(event: ProgressEvent) -> Event:
    """A progress event of the run (vgkit.records.events), pickled by its fields on its way to the driver."""
    return {"kind": "line", "t": time.time(), "line": event}


def _plan(layout: RunLayout) -> bytes | None:
    return layout.plan.read_bytes() if layout.plan.is_file() else None
