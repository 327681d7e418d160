"""The authors' renderer (pixar-render 0.5.1) at any setting; runs in the Pango virtualenv made by
../shared/tools/pango-bench/setup.sh (the bench tool's pango_side.py is fixed to the paper's setting):

    python pango_setting_side.py WHEEL_DIR TEXTS.json OUT.npz FONT_FILE FONT_SIZE DPI PIXELS_PER_PATCH PATCH_LEN MAX_PATCHES

Writes the strips (1 = white, 0 = ink) as `images` uint8 [N, H, W]."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

wheel, texts, out = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), sys.argv[3]
font, size, dpi, ppp, plen, patches = sys.argv[4], *map(int, sys.argv[5:10])
spec = importlib.util.spec_from_file_location("pcr", wheel / "pixar_render/pangocairo_render.py")
pcr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pcr)
fonts = wheel / "pixar_render/resources/fonts"
R = pcr.PangoCairoTextRenderer(font_file=str(fonts / font), font_size=size, rgb=False, dpi=dpi, pixels_per_patch=ppp,
                               max_seq_length=patches, patch_len=plen, fallback_fonts_dir=str(fonts))


def strip(t):
    px = R(t).pixel_values
    px = px.mean(-1) if px.ndim == 3 else px
    return (px > (127 if px.max() > 1 else 0.5)).astype(np.uint8)


np.savez_compressed(out, images=np.stack([strip(t) for t in texts]))
