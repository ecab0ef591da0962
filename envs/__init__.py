"""Environments for multi-turn text agents (ALFWorld, WebShop) behind one protocol, and the grouped pool."""

from envs.base import Info, TextEnv, make, register, registered
from envs.pool import EnvPool, EnvPoolError, StepResult

__all__ = ["EnvPool", "EnvPoolError", "Info", "StepResult", "TextEnv", "make", "register", "registered"]
