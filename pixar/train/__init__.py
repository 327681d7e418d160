"""Training: the one loop, stage 1, stage 2 (adversarial), run state, DDP/FSDP, preemption and the run lock."""
