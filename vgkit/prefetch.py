"""Download-only stage: fetch a model's files into the HF cache at its pinned revision.

Only what the loader needs is fetched (safetensors weights, configs, tokenizers); pickle formats
are never downloaded. Tokens come from the environment or the Hub's own login, never from params.
"""

from __future__ import annotations

from pathlib import Path

from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.models import adapter

__all__ = ["ALLOW_PATTERNS", "prefetch"]

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]


def prefetch(name: str) -> Path:
    """Download model ``name`` and return its snapshot directory."""
    model = adapter(name)
    if model.tiny:
        from vgkit.checkpoints import locate_checkpoint

        return locate_checkpoint(model)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(model.repo_id, revision=model.revision, allow_patterns=ALLOW_PATTERNS))
    except GatedRepoError:
        raise ModelUnavailableError(
            f"{model.repo_id} is gated; fix: accept its licence on the Hub, then `hf auth login` or set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise SpecError(f"model {name!r}: repo {model.repo_id} not found or not visible with your token") from None
    except HfHubHTTPError as exc:
        raise ModelUnavailableError(f"{model.repo_id}: download failed: {exc}; fix: check network and retry") from None
