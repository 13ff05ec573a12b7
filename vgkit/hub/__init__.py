"""The Hugging Face Hub: the local cache, checkpoint layouts, prefetch, attention kernels."""
