"""Stage 1, the spec: global constants and shot cards, prompts, the plan of frames, token budgets."""
