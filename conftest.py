"""Root pytest configuration.

A plain ``pytest`` runs every benchmark once, untimed, as a test (``--benchmark-disable``);
``pytest --benchmark-only`` times them.
"""
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    opt = config.option
    if hasattr(opt, "benchmark_only") and not opt.benchmark_only and not opt.benchmark_enable:
        opt.benchmark_disable = True
