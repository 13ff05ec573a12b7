"""What every model adapter shares: frame rules, clip limits, loading, calling (presets: presets.py).

An adapter is frozen data plus a few hooks. A model family's file (``wan22.py``, ...) defines
what differs: repo id and revision, pipeline class, native size, frame rule, presets, call
defaults and quirks as data, and as hooks (methods a family overrides) how to decode its
pipeline's latents (``decodes_separately``, ``decode_latents``), how to load its tokenizer and
components, which components its repo has (``expected_components``), where its baseline comes
from (``load_baseline``) and how to build its tiny random-weight checkpoint (``build_tiny``).
The generator and the speed features only call these hooks; they know no family by name.
Nothing here imports torch at import time.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.models.baselines import Baseline, baseline_path, read_baseline
from vgkit.models.presets import CPU_PRESET, Preset, apply_preset, torch_dtype
from vgkit.settings import cuda_gpu_memory_gib

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

__all__ = [
    "CPU_PRESET",
    "Baseline",
    "ClipLimits",
    "FrameRule",
    "ModelAdapter",
    "Preset",
    "apply_preset",
    "execution_device",
    "filter_call_kwargs",
    "quiet_hf_libraries",
]

_LOG = logging.getLogger("vgkit.models")


def quiet_hf_libraries(*, with_diffusers: bool = True) -> None:
    """Silence transformers' and diffusers' progress bars and info chatter (vgkit prints its own).
    ``with_diffusers=False`` leaves diffusers out, for a tokenizer alone: importing diffusers
    imports torch (about 3 s of CPU in a process that needs neither, such as ``vgkit check``)."""
    from transformers.utils import logging as transformers_logging

    libraries: list[Any] = [transformers_logging]
    if with_diffusers:
        from diffusers.utils import logging as diffusers_logging

        libraries.append(diffusers_logging)
    for lib in libraries:
        lib.set_verbosity_error()
        lib.disable_progress_bar()


@dataclass(frozen=True)
class FrameRule:
    """Valid clip lengths: ``num_frames % modulus == remainder`` (Wan: 4k+1)."""

    modulus: int
    remainder: int = 1

    def is_valid(self, num_frames: int) -> bool:
        return num_frames >= self.modulus + self.remainder and num_frames % self.modulus == self.remainder

    def nearest(self, num_frames: int) -> int:
        """The valid frame count nearest ``num_frames`` (ties go up)."""
        low = (num_frames - self.remainder) // self.modulus * self.modulus + self.remainder
        high = low + self.modulus
        best = low if num_frames - low < high - num_frames else high
        return max(best, self.modulus + self.remainder)

    def describe(self) -> str:
        return f"{self.modulus}k+{self.remainder}"


@dataclass(frozen=True)
class ClipLimits:
    """How long one clip of a model is: ``native_frames`` (the length it was trained on and makes
    best), ``max_frames`` (the most it makes at all; longer costs 2-4x time and memory and degrades
    motion), at ``fps``, in lengths that ``frame_rule`` allows. The plan never asks for more than
    ``native_frames`` unless the spec's ``long_shots`` says so, nor beyond ``max_frames`` without
    ``long_shots.beyond_max_frames``."""

    native_frames: int
    max_frames: int
    fps: int
    frame_rule: FrameRule

    def __post_init__(self) -> None:
        rule = self.frame_rule
        if not (rule.is_valid(self.native_frames) and rule.is_valid(self.max_frames)):
            raise ValueError(f"clip limits {self.native_frames}/{self.max_frames} break the {rule.describe()} rule")
        if self.max_frames < self.native_frames:
            raise ValueError(f"max_frames {self.max_frames} < native_frames {self.native_frames}")

    def describe(self) -> str:
        seconds = f"{(self.native_frames - 1) / self.fps:g} s"
        most = f", at most {self.max_frames}" if self.max_frames != self.native_frames else " (also the maximum)"
        return f"{self.native_frames} frames ({seconds}) @ {self.fps} fps{most}, {self.frame_rule.describe()}"


@dataclass(frozen=True)
class ModelAdapter:
    """One model as vgkit runs it. Subclasses add family hooks; instances live in the registry."""

    name: str
    title: str
    repo_id: str
    pipeline_class: str
    """The diffusers pipeline vgkit builds (always an image-to-video one)."""
    repo_pipeline_class: str
    """The class the real repo's model_index.json names (Wan: ``WanPipeline``, text only); vgkit
    builds ``pipeline_class`` from that repo's components."""
    clip_limits: ClipLimits
    size_multiple: int
    needs_gpu: bool
    revision: str = "main"
    tiny: bool = False
    download_gb: float = 0.0
    call_defaults: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments every pipeline call gets (CogVideoX: ``use_dynamic_cfg=True``)."""
    presets: tuple[Preset, ...] = ()
    masked_attention: bool = False
    """The transformer passes an attention mask on every call (HunyuanVideo: the text padding
    mask), so the attention backends that refuse a mask are refused for it (``vgkit.models.speed``)."""

    @property
    def frame_rule(self) -> FrameRule:
        return self.clip_limits.frame_rule

    @cached_property
    def baseline(self) -> Baseline:
        """The locked baseline (``load_baseline``), read on first use."""
        return self.load_baseline()

    def load_baseline(self) -> Baseline:
        """Hook: this model's locked baseline. vgkit's own models read the package data file
        ``vgkit/models/baselines/<name>.yaml``; a family from elsewhere returns its own."""
        return read_baseline(baseline_path(self.name))

    def tiny_twin(self, *, repo_id: str) -> Any:
        """This model's tiny random-weight twin: same class, rules, presets, call defaults and
        hooks; its baseline (smaller size, fewer steps) is ``<name>-tiny.yaml`` beside the real one's."""
        return replace(
            self,
            name=f"{self.name}-tiny",
            title=f"{self.title} (tiny random weights)",
            repo_id=repo_id,
            revision="main",
            needs_gpu=False,
            tiny=True,
            download_gb=0.0,
        )

    # -- checks -------------------------------------------------------------------------------
    def check_size(self, width: int, height: int, *, field_name: str = "overrides") -> None:
        """Refuse a size the pipeline would silently round (``SpecError`` naming the fix)."""
        m = self.size_multiple
        for label, value in (("width", width), ("height", height)):
            if value % m:
                lower, upper = value // m * m, (value // m + 1) * m
                raise SpecError(
                    f"{field_name}.{label} = {value}: {self.name} needs multiples of {m}; "
                    f"fix: use {lower or upper} or {upper}"
                )

    # -- loading --------------------------------------------------------------------------------
    def preset(self, name: str) -> Preset:
        """The preset called ``name``, or a ``SpecError`` listing this model's presets."""
        if found := next((preset for preset in self.presets if preset.name == name), None):
            return found
        known = ", ".join(p.name for p in self.presets) or "none"
        raise SpecError(f"preset = {name!r}: {self.name} has no such preset; fix: use one of {known}")

    def default_preset(self, device: str, *, gpu_memory_gib: float | None = None) -> Preset:
        """``cpu`` on CPU; on CUDA ``80gb`` when the card has >= 40 GiB, else ``4090``."""
        if device == "cpu":
            return self.preset("cpu")
        return self.preset("80gb" if (gpu_memory_gib or 0.0) >= 40 else "4090")

    def resolve_preset(self, requested: str | None, *, device: str, gpu_memory_gib: float | None = None) -> Preset:
        """The preset a run uses: ``requested`` by name, or the device's default for None/"auto".

        A preset that cannot run on CPU is refused there up front (``SpecError`` naming the fix).
        """
        if requested in (None, "", "auto"):
            return self.default_preset(device, gpu_memory_gib=gpu_memory_gib)
        chosen = self.preset(str(requested))
        blocker = chosen.cpu_blocker()
        if blocker is not None and device == "cpu":
            known = ", ".join(p.name for p in self.presets if p.cpu_blocker() is None)
            raise SpecError(f"{blocker}; fix: run on a CUDA GPU or use a preset that runs on CPU ({known})")
        return chosen

    def load(self, snapshot: Path, *, device: str, preset: str | None = None) -> DiffusionPipeline:
        """Load the pipeline from a snapshot directory onto ``device`` ("cpu" or "cuda").

        ``preset`` names one of ``self.presets``; None picks ``default_preset``. The applied preset
        is logged and kept on the pipeline as ``pipe.vgkit_preset`` (a dict).
        """
        index = snapshot / "model_index.json"
        if not index.is_file():
            raise ModelUnavailableError(
                f"model {self.name!r}: {snapshot} has no model_index.json (not a diffusers layout); "
                f"fix: vgkit prefetch --model {self.name}"
            )
        memory = cuda_gpu_memory_gib() if device == "cuda" else None
        chosen = self.resolve_preset(preset, device=device, gpu_memory_gib=memory)
        quiet_hf_libraries()
        import diffusers

        pipe: Any = getattr(diffusers, self.pipeline_class).from_pretrained(
            str(snapshot), **self._components(snapshot, preset=chosen), dtype=torch_dtype(chosen.other_dtype)
        )
        pipe.set_progress_bar_config(disable=True)
        record = apply_preset(pipe, chosen, device=device)
        pipe.vgkit_preset = record
        _LOG.info("model %s: preset %s applied: %s", self.name, chosen.name, record["applied"])
        return pipe

    def _components(self, snapshot: Path, *, preset: Preset) -> dict[str, Any]:
        """The components loaded apart from the rest, in the preset's dtypes: the transformer, and
        the VAE when the preset gives it its own dtype. Checks the layout before any weights load."""
        import diffusers

        classes = self._component_classes(snapshot)
        components = {
            "transformer": getattr(diffusers, classes["transformer"]).from_pretrained(
                str(snapshot), subfolder="transformer", dtype=torch_dtype(preset.transformer_dtype)
            )
        }
        if preset.vae_dtype is not None and preset.vae_dtype != preset.other_dtype:
            components["vae"] = getattr(diffusers, classes["vae"]).from_pretrained(
                str(snapshot), subfolder="vae", dtype=torch_dtype(preset.vae_dtype)
            )
        return components

    def expected_components(self) -> dict[str, tuple[str, str]]:
        """Hook: the components the real repo's model_index.json lists (name -> (library, class)),
        read from ``vgkit/models/reference/<model>/model_index.json``; null entries are left out.
        The loader refuses a snapshot whose components differ (``_component_classes``)."""
        from vgkit.models.tiny import reference_dir

        return _named_components(reference_dir(self.name.removesuffix("-tiny")) / "model_index.json")

    def _component_classes(self, snapshot: Path) -> dict[str, str]:
        """Check the snapshot holds this model's components; return each component's class name.

        The layout is the components, not the index's ``_class_name``: Wan's real repo names
        ``WanPipeline`` and vgkit builds ``WanImageToVideoPipeline`` from it. Every component the
        real repo lists must be present, and no other: the weight-bearing ones (transformer, VAE,
        text encoders) with the real class, while schedulers, tokenizers and image processors may
        be swapped (a Wan 2.2 A14B index adds ``transformer_2``, a Wan 2.1 I2V one an image encoder).
        An index naming another pipeline than ``repo_pipeline_class`` or ``pipeline_class`` is
        another model's or another task's checkpoint (a text-to-video CogVideoX has the same
        component classes), which re-downloading cannot fix: the message says so. Runs before any
        weights load, so a wrong or partial layout fails fast and by name.
        """
        import diffusers

        index_path = snapshot / "model_index.json"
        found = str(json.loads(index_path.read_text()).get("_class_name"))
        wrong_model = (
            f"model {self.name!r}: {index_path} names {found!r}, not {self.repo_pipeline_class!r} (layout mismatch): "
            f"this is a {found} checkpoint, not a {self.title} one"
        )
        if self.tiny:
            fix = f"fix: delete {snapshot} (tiny checkpoints are rebuilt on first use)"
            wrong_fix = fix
        else:
            fix = f"fix: re-download with `vgkit prefetch --model {self.name}`"
            wrong_fix = f"fix: point vgkit at a {self.repo_id} snapshot, or pick the --model this checkpoint is for"
        if found not in (self.repo_pipeline_class, self.pipeline_class):
            raise ModelUnavailableError(f"{wrong_model}; {wrong_fix}")
        expected = self.expected_components()
        present = _named_components(index_path)
        for component, (_, have) in present.items():
            if component not in expected:
                raise ModelUnavailableError(
                    f"model {self.name!r}: {index_path} has a `{component}` component ({have}) that the "
                    f"{self.title} repo has not (layout mismatch): this is another model's checkpoint; {wrong_fix}"
                )
        classes = {}
        for component, (library, wanted) in expected.items():
            if component not in present:
                raise ModelUnavailableError(
                    f"model {self.name!r}: {index_path} has no `{component}` component (incomplete download); {fix}"
                )
            have = present[component][1]
            if component.startswith(("transformer", "vae", "text_encoder")) and have != wanted:
                raise ModelUnavailableError(
                    f"model {self.name!r}: {index_path} names {component} class {have!r}, not {wanted!r} "
                    f"(layout mismatch): this is not a {self.title} checkpoint; {wrong_fix}"
                )
            if library == "diffusers" and not hasattr(diffusers, have):
                raise ModelUnavailableError(
                    f"model {self.name!r}: {index_path} names {component} class {have!r}, which diffusers "
                    f"{diffusers.__version__} does not have (layout mismatch); fix: install the diffusers "
                    "version setup.sh pins"
                )
            classes[component] = have
        return classes

    # -- decoding -------------------------------------------------------------------------------
    def decodes_separately(self, pipe: Any) -> bool:
        """Hook: whether vgkit decodes this pipeline's latents itself (``decode_latents``).

        True lets the chain keep the denoised latents on disk before the VAE decode (the usual
        out-of-memory point) and retry that decode leaner. False (the default, for a family with
        no decode tail) makes the pipeline decode inside its own call: no latents on disk.
        """
        return False

    def decode_latents(self, pipe: Any, latents: Any) -> Any:
        """Hook: the decode tail of the pipeline's ``__call__``: what its ``output_type="latent"``
        returned -> frames as the pipeline's ``output_type="np"`` gives them (floats in [0, 1],
        batch x frames x height x width x channels). Move the latents to ``execution_device(pipe)``
        first; the generator converts to uint8 and frees offloaded components afterwards."""
        raise NotImplementedError(f"{self.name}: no separate VAE decode (decodes_separately is False)")

    # -- tiny checkpoints -----------------------------------------------------------------------
    def load_tokenizer(self, snapshot: Path) -> Any:
        """The prompt tokenizer stored in a snapshot (no model weights are read)."""
        quiet_hf_libraries(with_diffusers=False)  # before transformers' imports, which warn at import time
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(snapshot / "tokenizer"))

    def build_tiny(self, dest: Path) -> None:
        """Write this model's tiny random-weight checkpoint (diffusers layout) into ``dest``."""
        raise NotImplementedError(f"{self.name} has no tiny checkpoint")


def _named_components(index_path: Path) -> dict[str, tuple[str, str]]:
    """The components a model_index.json lists (name -> (library, class)), null entries left out."""
    index = json.loads(index_path.read_text())
    return {
        name: (str(entry[0]), str(entry[1]))
        for name, entry in index.items()
        if isinstance(entry, list) and len(entry) == 2 and entry[1] is not None
    }


def filter_call_kwargs(pipe: Any, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Keep only the kwargs ``pipe.__call__`` accepts; return them and the sorted dropped names.

    All three pipelines raise ``TypeError`` on unknown kwargs (FACTS.md); the dropped names are
    logged, never silently lost.
    """
    params = inspect.signature(pipe.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs), []
    kept = {k: v for k, v in kwargs.items() if k in params}
    return kept, sorted(set(kwargs) - set(kept))


def execution_device(pipe: Any) -> Any:
    """The device ``pipe`` computes on, which a decode's latents must go to.

    Not ``pipe.vae.device``: under model CPU offload the pipeline's own call ends with
    ``maybe_free_model_hooks()``, which parks every component on the CPU, and the offload hook
    moves the VAE back to the accelerator when ``vae.decode`` runs; under sequential or group
    offload the VAE's weights rest on the CPU (or ``meta``). diffusers' ``_execution_device``
    reads the offload hooks (accelerate's for model and sequential offload, the group-offload
    onload device) and is the module device when nothing is offloaded.
    """
    return pipe._execution_device
