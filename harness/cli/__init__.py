"""The click commands of the pixar application, one module per command group (the root is harness.app)."""
