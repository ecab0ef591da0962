"""AdvantageConfig: the options every estimator shares, plus the chosen estimator's own typed options.

Options are given flat (``AdvantageConfig(estimator="hgpo", history_length=4)``, ``advantage.history_length=4``
in an override) or as ``options={...}``; they are validated by the estimator's options class
(``proxmo estimators`` lists them), and an option the estimator does not declare is refused with both named.
The dump is flat again, so saved configs, run parameters and overrides share one namespace.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_serializer, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from proxmo.advantage.options import EstimatorOptions

Preset = Literal["paper", "official"]

DEFAULT_ESTIMATOR = "proxmo"


class AdvantageConfig(BaseModel):
    """Configuration of one advantage estimator: shared fields plus ``options`` (the estimator's own).

    An estimator's options read as attributes of the config too (``config.temperature`` for ProxMO).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_assignment=True, allow_inf_nan=False)

    estimator: str = Field(DEFAULT_ESTIMATOR, description="Registered estimator name (proxmo estimators lists them).")
    preset: Preset = Field(
        "paper",
        description="Episode statistics: 'paper' (over trajectories, the penalty added after normalising) or "
        "'official' (over rows, the penalty inside the score, as the released code does).",
    )
    gamma: float = Field(0.95, ge=0.0, le=1.0, description="Discount of the step returns.")
    invalid_penalty: float = Field(0.1, ge=0.0, description="lambda: subtracted per invalid action.")
    epsilon: float = Field(1e-6, gt=0.0, description="Added to std before dividing.")
    options: SerializeAsAny[EstimatorOptions] = Field(
        default=None, validate_default=True, description="The estimator's own options (see proxmo estimators)."
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        """Move every key that is not a shared field into ``options`` and validate them as the estimator's."""
        if not isinstance(data, Mapping):
            return data
        from proxmo.advantage.registry import ESTIMATORS

        data = dict(data)
        estimator = data.get("estimator", DEFAULT_ESTIMATOR)
        if estimator not in ESTIMATORS:
            raise _invalid([(("estimator",), estimator, f"unknown estimator {estimator!r}; registered: "
                                                         f"{sorted(ESTIMATORS)}")])
        options_class = ESTIMATORS[estimator].options
        given = data.pop("options", None)
        if isinstance(given, EstimatorOptions):
            if not isinstance(given, options_class):
                raise _invalid([(("options",), given, f"{type(given).__name__} are not the options of estimator "
                                                      f"{estimator!r} ({options_class.__name__})")])
            given = given.model_dump(exclude_unset=True)
        merged: Dict[str, Any] = dict(given or {})
        for key in [key for key in data if key not in cls.model_fields]:
            merged[key] = data.pop(key)
        try:
            data["options"] = options_class.model_validate(merged)
        except ValidationError as error:
            raise _options_error(estimator, options_class, error) from None
        return data

    @model_serializer(mode="wrap")
    def _flat(self, handler: Any) -> Dict[str, Any]:
        dumped = handler(self)
        options = dumped.pop("options", None) or {}
        return {**dumped, **options}

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_"):
            options = self.__dict__.get("options")
            if options is not None and (name in type(options).model_fields or hasattr(type(options), name)):
                return getattr(options, name)
        return super().__getattr__(name)  # type: ignore[misc]



SHARED_FIELDS = tuple(name for name in AdvantageConfig.model_fields if name != "options")
"""The fields every estimator shares; everything else is an option of the chosen estimator."""


def _invalid(problems: List[tuple]) -> ValidationError:
    """A ValidationError whose errors sit at the options' own places (``advantage.temperature`` in a run config),
    from (loc, input, message) triples."""
    return ValidationError.from_exception_data("AdvantageConfig", [
        InitErrorDetails(type=PydanticCustomError("advantage_option", "{message}", {"message": message}), loc=loc,
                         input=value) for loc, value, message in problems])


def _options_error(estimator: str, options_class: type[EstimatorOptions], error: ValidationError) -> ValidationError:
    """The options class's errors, each at its option's name, saying which estimator it belongs to."""
    from proxmo.advantage.registry import ESTIMATORS

    problems = []
    for item in error.errors():
        loc, message = tuple(item["loc"]), item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            name = ".".join(str(part) for part in loc)
            owners = sorted(other for other, entry in ESTIMATORS.items() if name in entry.options.model_fields)
            where = f" (it is an option of {' and '.join(owners)})" if owners else ""
            own = sorted(options_class.model_fields)
            message = (f"not an option of estimator {estimator!r}{where}. Options of {estimator}: "
                       f"{', '.join(own) if own else 'none besides ' + ', '.join(SHARED_FIELDS)}")
        else:
            message = f"{message} ({'an option' if loc else 'the options'} of estimator {estimator!r})"
        problems.append((loc, item.get("input"), message))
    return _invalid(problems)
