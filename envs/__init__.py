"""Environments for multi-turn text agents (ALFWorld, WebShop) behind one protocol, and the grouped pool."""

from envs.base import EnvSpec, Info, ResultColumn, TextEnv, check_options, make, option_names, register, registered, spec
from envs.pool import EnvPool, EnvPoolError, StepResult

__all__ = ["EnvPool", "EnvSpec", "check_options", "option_names", "spec", "EnvPoolError", "Info", "ResultColumn", "StepResult", "TextEnv", "make", "register", "registered"]
