"""The click commands of the pixar application, one module per command group (the root is harness.app).

These modules are not entry points: `python -m harness.cli.<module>` exits non-zero with a line naming
the one entry module, `python -m harness.app` (the `pixar` console script), so a mistyped launch line
(torchrun, sbatch) fails loudly instead of exiting 0 having done nothing."""
from __future__ import annotations

import sys


def refuse_module_run(module: str, command: str) -> None:
    """Exit 2 with one line: `module` is a library of click commands; the command runs through harness.app."""
    print(f"{module} is not an entry point: run `python -m harness.app {command} ...` (the `pixar` command)",
          file=sys.stderr)
    sys.exit(2)
