"""Our renderer at PIXEL's setting and at 32-px patches vs the authors' renderer at the same setting, on a sample
of the multi-script goldens (pixar.render.settings); writes the goldens tests/test_render_settings.py checks.

    python benchmarks/render_settings.py [--ref DIR] [--every 12] [--out tests/golden]

Needs the bench tool's Pango reference (../shared/tools/pango-bench/setup.sh DIR). Writes
tests/golden/settings_<name>.npz (strips packed along W, 1 = white) and settings.json (the texts), and prints
how many strips are identical per setting and which differ.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_goldens import default_ref  # noqa: E402

from pixar.config_io import atomic_write, atomic_write_text  # noqa: E402
from pixar.render.renderer import Renderer  # noqa: E402
from pixar.render.settings import render_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# setting -> the authors' renderer's arguments: font file, font size (pt), dpi (the rest comes from the config)
AUTHORS = {"pixel": ("GoNotoCurrent.ttf", 8), "pixar32": ("PixeloidSans-mLxMm.ttf", 8)}


def reference(name: str, texts: list[str], ref: Path) -> np.ndarray:
    cfg = render_config(name)
    font, pt = AUTHORS[name]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "t.json").write_text(json.dumps(texts))
        subprocess.run([str(ref / "venv/bin/python"), str(Path(__file__).with_name("pango_setting_side.py")),
                        str(ref / "wheel"), str(Path(tmp) / "t.json"), str(Path(tmp) / "o.npz"), font, str(pt),
                        str(cfg.dpi), str(cfg.patch_size), str(cfg.patch_len), str(cfg.max_positions * cfg.patch_len)],
                       env=dict(os.environ, PYTHONPATH=str(ref / "stub")), check=True, capture_output=True)
        return np.load(Path(tmp) / "o.npz")["images"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", type=Path, default=default_ref())
    ap.add_argument("--every", type=int, default=12, help="every k-th multi-script golden string")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "golden")
    args = ap.parse_args()
    items = json.loads((ROOT / "tests/golden/multiscript.json").read_text(encoding="utf-8"))
    texts = [it["text"] for it in items][:: args.every] + ["Hello, world!", "gq jp Hello", "a\tb", "x\u00a0y"]
    atomic_write_text(args.out / "settings.json", json.dumps(texts, ensure_ascii=False, indent=0) + "\n")
    for name in AUTHORS:
        gold = reference(name, texts, args.ref)
        ours = Renderer(render_config(name)).render_batch(texts).pixels
        same = [bool(np.array_equal(a, b)) for a, b in zip(ours, gold)]
        print(f"{name}: identical {sum(same)}/{len(texts)}; differ: {[t for t, s in zip(texts, same) if not s][:20]}")
        bits = np.packbits(gold.astype(bool), axis=-1)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, bits=bits, width=np.array(gold.shape[-1]))

        atomic_write(args.out / f"settings_{name}.npz", write)


if __name__ == "__main__":
    main()
