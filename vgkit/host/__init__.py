"""The machine a run is on: GPU probe, the CUDA build of torch, the doctor."""
