"""Checkpoints (safetensors + JSON, atomic), the Hugging Face Hub glue, and import of official checkpoints."""
