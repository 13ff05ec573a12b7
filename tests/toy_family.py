"""A fourth model family, defined outside vgkit in this one module: the proof that a family is one file.

``toy-skyreels`` runs diffusers' ``SkyReelsV2ImageToVideoPipeline`` (a Wan 2.1-style image-to-video
pipeline with a CLIP image encoder, a component none of vgkit's three families has) at toy sizes
with random weights. Everything vgkit needs to run it is here: the adapter's data (frame rule, size
multiple, presets, call defaults), its hooks (baseline, expected components, separate decode, tiny
checkpoint) and one public call, ``vgkit.models.register_model``. Its numbers are the toy's own,
chosen for a fast CPU test, not SkyReels-V2's published ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgkit.models import Baseline, FrameRule, ModelAdapter, register_model, unregister_model
from vgkit.models.base import CPU_PRESET, ClipLimits, execution_device

__all__ = ["TOY", "ToySkyReelsAdapter", "register", "unregister"]

# The components the toy checkpoint's model_index.json lists, as the loader must find them.
_COMPONENTS = {
    "tokenizer": ("transformers", "T5Tokenizer"),
    "text_encoder": ("transformers", "UMT5EncoderModel"),
    "image_encoder": ("transformers", "CLIPVisionModelWithProjection"),
    "image_processor": ("transformers", "CLIPImageProcessor"),
    "transformer": ("diffusers", "SkyReelsV2Transformer3DModel"),
    "vae": ("diffusers", "AutoencoderKLWan"),
    "scheduler": ("diffusers", "UniPCMultistepScheduler"),
}


@dataclass(frozen=True)
class ToySkyReelsAdapter(ModelAdapter):
    def load_baseline(self) -> Baseline:
        # 4 fps: a 5 s shot is 21 frames, so a clip takes seconds. A character-level tokenizer:
        # 256 tokens hold the test spec's prompts.
        return Baseline(fps=4, width=48, height=32, steps=2, guidance_scale=5.0, max_sequence_length=256)

    def expected_components(self) -> dict[str, tuple[str, str]]:
        return dict(_COMPONENTS)

    def decodes_separately(self, pipe: Any) -> bool:
        return True

    def decode_latents(self, pipe: Any, latents: Any) -> Any:
        """The decode tail of ``SkyReelsV2ImageToVideoPipeline.__call__`` (diffusers 0.42.1)."""
        import torch

        vae = pipe.vae
        latents = latents.to(device=execution_device(pipe), dtype=vae.dtype)
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents.device, latents.dtype)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(shape).to(latents.device, latents.dtype)
        with torch.no_grad():
            video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
        return pipe.video_processor.postprocess_video(video, output_type="np")

    def build_tiny(self, dest: Path) -> None:
        """Random weights at toy widths, saved in the diffusers layout (vgkit's tokenizer helpers)."""
        import torch
        from diffusers import (
            AutoencoderKLWan,
            SkyReelsV2ImageToVideoPipeline,
            SkyReelsV2Transformer3DModel,
            UniPCMultistepScheduler,
        )
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

        from vgkit.models.base import quiet_hf_libraries
        from vgkit.models.tiny import edit_json, t5_text_encoder, t5_tokenizer

        quiet_hf_libraries()
        tokenizer = t5_tokenizer()
        torch.manual_seed(0)
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=8,
                projection_dim=8,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                intermediate_size=16,
                patch_size=4,
            )
        ).eval()
        torch.manual_seed(0)
        transformer = SkyReelsV2Transformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=36,  # 16 noise + 4 mask + 16 image-condition latent channels
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            image_dim=8,  # the image encoder's hidden size
            rope_max_seq_len=32,
        )
        torch.manual_seed(0)
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
        pipe: Any = SkyReelsV2ImageToVideoPipeline(
            tokenizer=tokenizer,
            text_encoder=t5_text_encoder(tokenizer, umt5=True),
            image_encoder=image_encoder,
            image_processor=CLIPImageProcessor(crop_size=32, size=32),
            transformer=transformer,
            vae=vae,
            scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
        )
        pipe.save_pretrained(str(dest), safe_serialization=True)
        # transformers saves the image processor as CLIPImageProcessorPil when torchvision is absent.
        edit_json(dest / "model_index.json", {"image_processor": list(_COMPONENTS["image_processor"])})


TOY = ToySkyReelsAdapter(
    name="toy-skyreels",
    title="Toy SkyReels-V2 I2V (random weights, a test family)",
    repo_id="vgkit-test/toy-skyreels-v2-i2v",
    revision="main",
    pipeline_class="SkyReelsV2ImageToVideoPipeline",
    repo_pipeline_class="SkyReelsV2ImageToVideoPipeline",
    clip_limits=ClipLimits(native_frames=21, max_frames=21, fps=4, frame_rule=FrameRule(modulus=4, remainder=1)),
    size_multiple=16,
    needs_gpu=False,
    tiny=True,
    presets=(CPU_PRESET,),
)


def register() -> None:
    """Add the toy family to vgkit's registry (the one call a new family needs)."""
    register_model(TOY)


def unregister() -> None:
    unregister_model(TOY.name)
