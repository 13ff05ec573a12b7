"""The GPU cards vgkit projects for: dense bf16 tensor peak, memory, host link, each with its source.

Peaks are the vendors' dense (not 2:4 sparse) bf16 tensor figures with fp32 accumulate, which is
what PyTorch's bf16 matmuls use. ``card_class`` groups cards that share one fitted efficiency
factor (``vgkit.cost.fit``): one per GPU architecture, since Ada, Ampere and Hopper cards reach
different fractions of their peak on the same workload (Hopper's bf16 peak is far above what
PyTorch's attention kernels reach on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from vgkit.errors import SpecError

__all__ = ["CARDS", "PRESET_CARDS", "GpuCard", "card", "card_for_memory"]


@dataclass(frozen=True)
class GpuCard:
    name: str
    title: str
    bf16_dense_tflops: float
    memory_gib: float  # what the driver reports (nvidia-smi's total, in GiB), not the marketing GB
    host_link_gb_s: float  # host <-> device copy rate used for offload transfers (PCIe, one way)
    card_class: str  # the architecture ("ada", "ampere", "hopper"): which fitted efficiency factor applies
    source: str


CARDS: tuple[GpuCard, ...] = (
    GpuCard(
        name="4090",
        title="NVIDIA GeForce RTX 4090 24 GB",
        bf16_dense_tflops=165.2,
        memory_gib=23.99,
        host_link_gb_s=25.0,
        card_class="ada",
        source="NVIDIA Ada Lovelace GPU architecture whitepaper, appendix table (RTX 4090: 165.2 dense BF16 "
        "tensor TFLOPS with FP32 accumulate; 24 GB GDDR6X; PCIe 4.0 x16)",
    ),
    GpuCard(
        name="l40s",
        title="NVIDIA L40S 48 GB",
        bf16_dense_tflops=362.05,
        memory_gib=44.99,
        host_link_gb_s=25.0,
        card_class="ada",
        source="NVIDIA L40S datasheet (362.05 dense BF16 tensor TFLOPS, 733 with sparsity; 48 GB; PCIe 4.0 x16)",
    ),
    GpuCard(
        name="a100",
        title="NVIDIA A100 80 GB",
        bf16_dense_tflops=312.0,
        memory_gib=80.0,
        host_link_gb_s=25.0,
        card_class="ampere",
        source="NVIDIA A100 Tensor Core GPU datasheet (312 dense BF16 TFLOPS, 624 with sparsity; 80 GB HBM2e)",
    ),
    GpuCard(
        name="h100",
        title="NVIDIA H100 SXM 80 GB",
        bf16_dense_tflops=989.4,
        memory_gib=79.65,
        host_link_gb_s=50.0,
        card_class="hopper",
        source="NVIDIA H100 Tensor Core GPU datasheet, SXM column (989 dense BF16 TFLOPS, 1,979 with sparsity; "
        "80 GB HBM3; PCIe 5.0)",
    ),
    GpuCard(
        name="h200",
        title="NVIDIA H200 SXM 141 GB",
        bf16_dense_tflops=989.4,
        memory_gib=140.4,
        host_link_gb_s=50.0,
        card_class="hopper",
        source="NVIDIA H200 Tensor Core GPU datasheet, SXM column (989 dense BF16 TFLOPS; 141 GB HBM3e; PCIe 5.0)",
    ),
)


def card(name: str) -> GpuCard:
    """The card called ``name`` (case-insensitive), or a ``SpecError`` listing the known cards."""
    if found := next((known for known in CARDS if known.name == name.lower()), None):
        return found
    names = ", ".join(c.name for c in CARDS)
    raise SpecError(f"gpu = {name!r}: vgkit has no figures for this card; fix: use one of {names}")


def card_for_memory(memory_gib: float) -> GpuCard:
    """The listed card whose memory is nearest ``memory_gib`` (what a preset named by memory means)."""
    return min(CARDS, key=lambda c: abs(c.memory_gib - memory_gib))


# The cards each GPU preset is named for, first the one it is tuned to fit (vgkit models lists each).
PRESET_CARDS: dict[str, tuple[str, ...]] = {"4090": ("4090",), "80gb": ("h100", "a100")}
