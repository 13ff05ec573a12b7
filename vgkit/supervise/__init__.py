"""Guardrails around generation: deadlines, the one-job-per-GPU lock, the worker process, telemetry."""
