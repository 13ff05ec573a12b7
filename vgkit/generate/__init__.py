"""Stage 2, generation: one loaded pipeline, the chain of clips, the run driver."""
