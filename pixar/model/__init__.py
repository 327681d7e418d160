"""The PIXAR transformer over pixel positions, generation with a KV cache, and the stage-2 discriminator."""
