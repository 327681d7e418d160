"""Build script for the one optional C extension (everything else is in pyproject.toml).

pixar.render._strips is the renderer's native fast path (docs/rendering.md "Speed"). It is built by the project's
own install step (`pip install -e .`, `make setup`) with the machine's C compiler; `optional=True`: without a
compiler the install still succeeds and the renderer uses its pure-Python path, which draws the same pixels."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("pixar.render._strips", ["pixar/render/_strips.c"], optional=True,
                             extra_compile_args=["-O2"])])
