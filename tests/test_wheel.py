"""The presets ship with the package: a wheel built from the project, installed into a fresh virtualenv outside
the checkout (dependencies borrowed from the test interpreter's site-packages, the editable install left out),
trains pixar-micro for 2 steps from its own copy of configs/."""
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_outside_the_checkout_and_finds_its_presets(tmp_path):
    pytest.importorskip("setuptools")
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("pixar_harness-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    # the test interpreter's packages as plain path entries: its editable-install finder (.pth code) is not run
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--target", str(site), str(wheel)], check=True, capture_output=True, cwd=tmp_path)

    corpus = tmp_path / "text.txt"
    corpus.write_text(" ".join(f"Sentence number {i} is here to be read by a pixel model." for i in range(400)))
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIXAR_DATA")}
    where = subprocess.run([str(py), "-c", "import pixar, pixar.config as c; print(pixar.__file__); print(c.preset_dir())"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.split()
    assert all(str(site) in w for w in where), where  # the installed copy, not the checkout
    run = subprocess.run([str(py), "-m", "harness.app", "train", "--config", "pixar-micro", "--out", str(work / "run"),
                          "--set", "train.steps=2", "--set", f"train.data=[{corpus}]", "--set", "train.save_every=0",
                          "--set", "train.sample_every=0", "--set", "train.eval_every=0", "--device", "cpu"],
                         capture_output=True, text=True, cwd=work, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "run" / "step-0000002" / "model.safetensors").is_file()
    assert "stage 1 finished" in run.stdout
