"""Every performance ratio in one run (`make bench`):

  rendering         ours vs the authors' PangoCairo renderer + Pillow oracle benchmarks/render.py
  generation        KV cache vs full recompute (300-position prompt)         benchmarks/generate.py
  read-back         glyph decoder vs Tesseract (accuracy and lines/s)        benchmarks/ocr.py
  training step     our Pixar vs an HF LlamaModel build; fraction of fp32 matmul peak   benchmarks/train_step.py
  LAMBADA           evaluation throughput, PIXAR vs GPT-2, both protocols    benchmarks/lambada.py

Each runs as its own process (so one's threads/caches do not colour the next) with small sizes; pass
--full for the sizes quoted in README/REPORT.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {
    "render": ["--lines", "200"],
    "generate": ["--batch", "2"],
    "ocr": ["--lines", "100"],
    "train_step": ["--steps", "5"],
    "lambada": ["--n", "100"],
}
FULL = {"render": ["--lines", "1000"], "generate": ["--batch", "4"], "ocr": ["--lines", "300"],
        "train_step": ["--steps", "10"], "lambada": ["--n", "500"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--only", nargs="*", default=None, help="subset of: " + " ".join(QUICK))
    args = ap.parse_args()
    sizes = FULL if args.full else QUICK
    failed = []
    for name, extra in sizes.items():
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} ({HERE / (name + '.py')} {' '.join(extra)})", flush=True)
        if name in ("ocr", "lambada") and not os.environ.get("PIXAR_DATA"):
            print("skipped: needs PIXAR_DATA")
            continue
        t0 = time.time()
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *extra])
        print(f"--- {name}: {time.time() - t0:.0f} s" + ("" if rc == 0 else f", FAILED (exit {rc})"), flush=True)
        if rc:
            failed.append(name)
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()
