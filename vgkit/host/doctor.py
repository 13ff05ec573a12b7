"""``vgkit doctor``: can a run succeed on this machine, and if not, what to fix first.

One line per fact (GPUs and driver, torch and its CUDA, what each GPU can do, usable attention
backends, HF cache and the weights in it, free disk against what the chosen models need, ffmpeg,
the model and preset ``auto`` picks, the projected time per clip) and one line per problem, each
with its fix. ``diagnose()`` returns the findings; ``summary()`` the text that notebooks show
first; the CLI exits 1 when any problem would make a run fail.

Nothing here loads a model or touches the network. torch is imported only where ``nvidia-smi``
shows a GPU (elsewhere runs use the CPU, and its build is read from its files), diffusers only to
check a GPU's attention backends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vgkit.errors import VgkitError
from vgkit.host.cuda_builds import DriverError, DriverInfo, read_driver
from vgkit.host.gpu import TorchView, torch_build, torch_view

if TYPE_CHECKING:
    from vgkit.models import ModelAdapter, Preset

__all__ = ["OUTPUT_RESERVE_GB", "Diagnosis", "Finding", "diagnose", "summary"]

OUTPUT_RESERVE_GB = 10.0  # clips, latents, stitched video and bundle of one long run, with room to spare


@dataclass(frozen=True)
class Finding:
    topic: str
    text: str
    problem: bool = False  # a run could not succeed until it is fixed

    def line(self) -> str:
        return f"problem: {self.topic}: {self.text}" if self.problem else f"  {self.topic}: {self.text}"


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)

    def add(self, topic: str, text: str, *, problem: bool = False) -> None:
        self.findings.append(Finding(topic, text, problem))

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        verdict = (
            "doctor: ready: nothing here blocks a run"
            if self.ok
            else f"doctor: {len(self.problems)} problem(s): a run would fail; fix the lines marked 'problem' first"
        )
        return "\n".join(["vgkit doctor", *(f.line() for f in self.findings), verdict])


def _driver(report: Diagnosis) -> DriverInfo | None:
    try:
        driver = read_driver()
    except DriverError as exc:
        report.add("GPU", f"{exc}; fix: rent another offer (the NVIDIA driver does not answer)", problem=True)
        return None
    if driver is None:
        why = "VGKIT_FORCE_CPU=1" if os.environ.get("VGKIT_FORCE_CPU") == "1" else "no nvidia-smi"
        report.add("GPU", f"none ({why}): runs use the tiny random-weight checkpoints on CPU")
        return None
    report.add("GPU", f"NVIDIA driver {driver.driver_text} (supports CUDA {driver.cuda_text}); nvidia-smi shows "
                      f"{'; '.join(driver.gpus)}")  # fmt: skip
    return driver


def _torch(report: Diagnosis, driver: DriverInfo | None, view: TorchView) -> None:
    if view.version is None:
        report.add("torch", "not installed; fix: bash setup.sh", problem=True)
        return
    report.add("torch", f"{view.version} ({'CUDA ' + view.cuda if view.cuda else 'CPU build'})")
    if driver is not None and not view.usable:
        report.add("torch", f"nvidia-smi shows a GPU, but {view.why_not(driver)}", problem=True)
    for gpu in view.gpus:
        fp8 = (
            "fp8 layerwise storage with fp8 tensor cores" if gpu.fp8 else "no fp8 tensor cores (sm_89/sm_90 have them)"
        )
        text = f"cuda:{gpu.index} {gpu.name}, {gpu.sm}, {gpu.memory_gib:.1f} GiB: torch can use it; bf16 "
        report.add("GPU", text + ("yes" if gpu.bf16 else "not native") + f"; {fp8}")
        if not gpu.bf16:
            report.add(
                "GPU",
                f"cuda:{gpu.index} {gpu.name} ({gpu.sm}) has no native bf16, which every model's presets compute in; "
                f"fix: rent an sm_80 or newer card (A100, L4, RTX 4090, H100)",
                problem=True,
            )


def _attention(report: Diagnosis, view: TorchView) -> None:
    """Which diffusers attention backends can run here (vgkit.models.speed names them)."""
    from vgkit.models.speed import ATTENTION_BACKENDS, CPU_ATTENTION_BACKENDS

    if not view.usable:
        report.add("attention", f"on CPU: {', '.join(CPU_ATTENTION_BACKENDS)}")
        return
    capability = min(g.capability for g in view.gpus)
    usable, refused = [], dict[str, list[str]]()
    for name in ATTENTION_BACKENDS:
        if name in ("_native_npu", "_native_xla"):
            continue
        if reason := _attention_blocker(name, capability):
            refused.setdefault(reason, []).append(name)
        else:
            usable.append(name)
    report.add("attention", f"usable: {', '.join(usable)}")
    if refused:
        report.add("attention", "not usable: " + "; ".join(f"{', '.join(n)} ({r})" for r, n in refused.items()))


def _attention_blocker(name: str, capability: tuple[int, int]) -> str | None:
    native = {"native": (0, 0), "_native_math": (0, 0), "_native_efficient": (5, 0), "flex": (7, 0),
              "_native_flash": (8, 0), "_native_cudnn": (8, 0)}  # fmt: skip
    if name in native:
        return None if capability >= native[name] else f"needs sm_{native[name][0]}{native[name][1]}+"
    try:
        from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

        _check_attention_backend_requirements(AttentionBackendName(name))
    except (RuntimeError, ValueError, ImportError) as exc:
        said = str(exc).split(". ")[0]
        return said.split(" is not usable because ")[-1].replace("of missing package", "package missing")
    if name.endswith("_hub"):  # runs only once its kernel build for this torch/CUDA is in the HF cache
        from vgkit.hub.kernels import verify

        try:
            verify(name)
        except VgkitError:
            return f"kernel not prefetched: `vgkit prefetch --attention-backend {name}`"
    return None


def _weights(report: Diagnosis, *, verify: bool) -> None:
    from vgkit.hub.cache import check_snapshot
    from vgkit.models import adapter, model_names
    from vgkit.settings import describe_hub_cache

    report.add("HF cache", describe_hub_cache().removeprefix("vgkit: HF cache "))
    states = []
    for name in model_names():
        model = adapter(name)
        if model.tiny:
            continue
        status = check_snapshot(model.repo_id, model.revision, verify=verify)
        how = "hashes verified" if verify and status.complete else "sizes match" if status.complete else ""
        states.append(f"{name} {status.describe()}" + (f" ({how})" if how else ""))
    report.add("weights", "; ".join(states))


def _disk(report: Diagnosis, needed_gb: float, labels: list[str]) -> None:
    from vgkit.settings import hub_cache_dir

    place = hub_cache_dir()
    while not place.exists() and place != place.parent:
        place = place.parent
    free_gb = shutil.disk_usage(place).free / 1e9
    need = needed_gb + OUTPUT_RESERVE_GB
    what = f"{' + '.join(labels)} + {OUTPUT_RESERVE_GB:.0f} GB for outputs" if labels else "outputs"
    text = f"{free_gb:.0f} GB free at {place}; needs ~{need:.0f} GB ({what})"
    if free_gb < need:
        report.add("disk", f"{text}; fix: free space, or rent an offer with more disk", problem=True)
    else:
        report.add("disk", text)


def _ffmpeg(report: Diagnosis) -> None:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        first = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30).stdout.splitlines()
        report.add("ffmpeg", f"{exe} ({first[0] if first else 'no version line'})")
    except (ImportError, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        report.add("ffmpeg", f"unusable ({exc}); fix: bash setup.sh (installs imageio-ffmpeg)", problem=True)


def _model(report: Diagnosis, requested: str, view: TorchView) -> tuple[float, list[str]]:
    """The model and preset a run with ``requested`` uses, its projected time per clip; returns the
    GB its weights still need on disk and a label for them."""
    from vgkit.hub.cache import snapshot_dir
    from vgkit.models import adapter, choose_model

    try:
        choice = choose_model(requested)
        preset = choice.preset(None)
    except VgkitError as exc:
        report.add("model", f"--model {requested}: {exc}", problem=True)
        try:
            model = adapter(requested)
        except VgkitError:
            return 0.0, []
        missing = not model.tiny and snapshot_dir(model.repo_id, model.revision) is None
        return (model.download_gb, [f"{model.name} weights {model.download_gb:.0f} GB"]) if missing else (0.0, [])
    model = choice.model
    report.add("model", f"--model {requested} -> {model.name} on {choice.device}, preset {preset.name} "
                        f"({choice.reason})")  # fmt: skip
    report.add("time per clip", _projection(model, preset, view))
    return 0.0, []


def _projection(model: ModelAdapter, preset: Preset, view: TorchView) -> str:
    from vgkit.cost.planner import card_for_this_machine, project_native

    if model.tiny or preset.device == "cpu":
        return "tiny random-weight model: seconds per clip on CPU, nothing to project"
    gpu = view.gpus[0] if view.gpus else None
    card = card_for_this_machine(gpu.name, gpu.memory_gib) if gpu else None
    if card is None:
        return f"no figures for {gpu.name if gpu else 'this GPU'}; `vgkit check SPEC --gpu 4090|h100` projects a plan"
    one = project_native(model, preset, gpu=card)
    return f"{one.describe()} ({one.width}x{one.height}, {one.num_frames} frames, {one.steps} steps)"


def diagnose(*, models: list[str] | None = None, verify: bool = False) -> Diagnosis:
    """Every finding for a run of ``models`` (default: what ``auto`` picks) on this machine."""
    report = Diagnosis()
    driver = _driver(report)
    view = torch_view() if driver is not None else torch_build()  # no GPU shown: runs use the CPU
    _torch(report, driver, view)
    _attention(report, view)
    _weights(report, verify=verify)
    needed, labels = 0.0, list[str]()
    for requested in models or ["auto"]:
        gb, label = _model(report, requested, view)
        needed, labels = needed + gb, labels + label
    _disk(report, needed, labels)
    _ffmpeg(report)
    return report


def summary(*, models: list[str] | None = None) -> str:
    """The doctor's text, for a notebook's first cell (``print(vgkit.host.doctor.summary())``)."""
    return diagnose(models=models).text()
