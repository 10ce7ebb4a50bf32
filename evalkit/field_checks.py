"""Field validators shared by the configurations (:mod:`evalkit.config`): booleans that are not numbers,
finite floats, errors of the parsers that check a field, and empty strings.

Standard library and pydantic only (the command line validates a config before any heavy import).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from evalkit.inputs import BUILTIN_DATASETS

#: what an empty string in a text field stands in for: field -> what was expected instead. ``""`` is
#: never "not given" (a shell variable that came out empty, a spec's ``output = ""``): it is refused.
EXPECTED: dict[str, str] = {
    "experiment": "a non-empty experiment name",
    "dataset": f"a built-in dataset name ({', '.join(BUILTIN_DATASETS)}) or a data file",
    "test_dataset": f"a built-in dataset name ({', '.join(BUILTIN_DATASETS)}) or a data file",
    "weights": "a state_dict file",
    "resume": "the id of the run to resume",
    "tracking_uri": "an MLflow tracking URI (e.g. sqlite:///mlruns/mlflow.db)",
    "run_name": "a non-empty run name",
    "register_model": "a registered model name",
    "alias": "an alias name (e.g. champion)",
    "output": "a file path for the report JSON",
    "predictions": "a predictions file (.npz, .parquet or .csv)",
    "model": "an MLflow URI or a model file",
    "arch": "linear, mlp or cnn",
    "preprocess": "a preprocess.json file",
    "label_map": "a label map file (CSV or JSON)",
    "threshold": "a cut in (0, 1), a strategy or a thresholds file",
    "baseline": "last, champion, a run id or a models:/ URI",
    "job": "a non-empty job name",
}


def not_bool(v: Any) -> Any:
    """Before-validator of numeric fields: ``true`` / ``false`` are not numbers (pydantic would read 1 / 0)."""
    if isinstance(v, bool):
        raise PydanticCustomError("not_a_number", "expected a number, not a boolean")
    return v


def finite(v: float) -> float:
    """``v`` itself. Raises ValueError: NaN or infinite."""
    if not math.isfinite(v):
        raise ValueError("expected a finite number")
    return v


def elementwise_not_bool(v: Any) -> Any:
    """:func:`not_bool` of a value or of each item of a list (``hidden = [true]``)."""
    for item in v if isinstance(v, list) else [v]:
        not_bool(item)
    return v


def checked(check, v: str, prefix: str) -> str:
    """``check(v)``; its :class:`~evalkit.errors.InputError` becomes a pydantic error (without the
    ``--flag:`` ``prefix``, so that a spec names its key and the command line its flag)."""
    from evalkit.errors import InputError

    try:
        check(v)
    except InputError as e:
        raise PydanticCustomError("invalid_value", "{reason}", {"reason": str(e).removeprefix(prefix)}) from None
    return v


def not_blank(v: str | None, info) -> str | None:
    """A text field given as ``""`` or spaces is refused with what :data:`EXPECTED` names for it."""
    if v is not None and not v.strip():
        raise PydanticCustomError("blank", "expected {what}",
                                  {"what": EXPECTED.get(info.field_name, "a non-empty value")})
    return v


#: a float that is not a boolean (TOML ``true`` is not 1.0)
Number = Annotated[float, BeforeValidator(not_bool)]
