"""Typed settings of the Prefect tasks: where training jobs run (:class:`LaunchSpec`) and where runs are tracked
(:class:`TrackingSpec`); the flows' own specs (``flows.specs``) hold both."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LAUNCHERS = ("local", "ray")


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    @classmethod
    def build(cls, **given):
        """The spec of ``given`` (fields left out keep their defaults; None counts as left out); a ValueError with
        one line per problem, each naming its field, when a value is refused."""
        try:
            return cls(**{key: value for key, value in given.items() if value is not None})
        except ValidationError as error:
            problems = []
            for item in error.errors():
                where = ".".join(str(part) for part in item["loc"])
                message = item["msg"].removeprefix("Value error, ")
                problems.append(message if not where or message.startswith(f"{where}:") else f"{where}: {message}")
            raise ValueError("; ".join(problems)) from None


class LaunchSpec(Spec):
    """Where a flow's training jobs run."""

    launcher: Literal[LAUNCHERS] = Field(
        "local", description="local: one job after another in the flow's process; ray: each job a Ray task, side "
        "by side on the machine's cores or a cluster's nodes.")
    num_cpus: float = Field(1.0, ge=0, description="CPUs each job asks Ray for (launcher ray).")
    num_gpus: float = Field(0.0, ge=0, description="GPUs each job asks Ray for (launcher ray).")
    ray_address: Optional[str] = Field(
        None, description="The Ray cluster to join (launcher ray); default RAY_ADDRESS, else a local Ray.")
    retries: int = Field(1, ge=0, description="Retries of a job that fails or whose process dies; a retry resumes "
                         "from the job's last checkpoint.")

    def launch(self) -> "LaunchSpec":
        """The launch settings alone (of a flow's spec, which holds them among its own)."""
        return LaunchSpec.model_validate(self.model_dump(include=set(LaunchSpec.model_fields)))


class TrackingSpec(Spec):
    """Where a flow's runs are tracked: one MLflow parent run per flow, its jobs nested under it."""

    experiment: str = Field("proxmo", min_length=1, description="MLflow experiment of the parent run and its jobs.")
    tracking_uri: Optional[str] = Field(None, description="MLflow store; default MLFLOW_TRACKING_URI, else MLflow's.")


__all__ = ["LAUNCHERS", "LaunchSpec", "Spec", "TrackingSpec"]
