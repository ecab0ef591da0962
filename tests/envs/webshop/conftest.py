"""Shared fixtures: the default test-split shop (built once per process and cached by the package)."""

import pytest

from envs.webshop import WebShopEnv


@pytest.fixture
def env() -> WebShopEnv:
    return WebShopEnv(split="test")
