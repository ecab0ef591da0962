"""The typed options an estimator declares: the base class and the option types several estimators share."""

from __future__ import annotations

from typing import Any, Dict, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

Normalization = Literal["mean_norm", "mean_std_norm"]


class EstimatorOptions(BaseModel):
    """Options of one estimator: each estimator subclasses this with its own fields, defaults and ranges.

    Options are validated when an :class:`~proxmo.advantage.AdvantageConfig` is made; a name the
    estimator does not declare is refused with the estimator and the option named.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_assignment=True, allow_inf_nan=False)


class NoOptions(EstimatorOptions):
    """An estimator without options of its own (the shared ones are gamma, invalid_penalty, epsilon, preset)."""


def normalization_field(default: str, where: str = "episode and step groups") -> Any:
    """The mean_norm / mean_std_norm switch, with the estimator's own default."""
    return Field(default, description=f"Normalisation of the {where}: subtract the mean (mean_norm), or also "
                                      "divide by std + epsilon (mean_std_norm).")


def option_table(options: type[EstimatorOptions]) -> Dict[str, Dict[str, Any]]:
    """name -> {default, type, description, bounds} of an options class, for listings and search spaces."""
    table = {}
    for name, field in options.model_fields.items():
        bounds = {}
        for item in field.metadata:
            for key in ("ge", "gt", "le", "lt"):
                if getattr(item, key, None) is not None:
                    bounds[key] = getattr(item, key)
        table[name] = {"default": field.default, "type": type_name(field.annotation),
                       "description": field.description or "", "bounds": bounds}
    return table


def type_name(annotation: Any) -> str:
    """'int', 'float | None', 'mean_norm | mean_std_norm' (the choices of a Literal)."""
    if get_origin(annotation) is Literal:
        return " | ".join(str(choice) for choice in get_args(annotation))
    arguments = get_args(annotation)
    if arguments:
        return " | ".join(type_name(argument) for argument in arguments)
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))

