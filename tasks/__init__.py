"""Prefect tasks: thin units of orchestrated work around the training job."""
