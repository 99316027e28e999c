"""Benchmarks: `python -m benchmarks [--scale small|large]` (see docs/BENCHMARKS.md).

Each part (etl, callbacks, load, pdf) is a module with `run(ctx: BenchContext) -> None` that
adds figures to `ctx.report`; every figure sits beside a floor measured in the same run, so
a slow machine slows both and the ratio still says something.
"""
