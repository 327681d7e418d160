"""Pretraining data: text sources and packing, the prepare-once step, and the memory-mapped prepared dataset."""
