"""Prefect flows: a training run (``train``) and the paper's results table (``reproduce``)."""
