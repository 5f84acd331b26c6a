"""Problems as data: pydantic's validation errors as (where, message) pairs in the reader's language, every problem
at once, never pydantic's own English sentence (it may echo the input)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .config import Problem, Settings
from .text import Msg


# pydantic error type -> (message key, the context value it names)
_ERROR_TEXT = {
    "greater_than_equal": ("config.ge", "ge"), "greater_than": ("config.gt", "gt"),
    "less_than_equal": ("config.le", "le"), "less_than": ("config.lt", "lt"),
    "literal_error": ("config.choice", "expected"), "int_type": ("config.int", None),
    "int_from_float": ("config.int", None), "float_type": ("config.float", None),
    "finite_number": ("config.finite", None), "bool_type": ("config.bool", None),
    "string_type": ("config.str", None), "string_too_short": ("config.too_short", None),
    "missing": ("config.missing", None), "extra_forbidden": ("config.unknown", None),
    "bad_mapping": ("config.bad_mapping", "part"), "dict_type": ("config.mapping", None),
    "shares_too_large": ("config.shares_too_large", "limit"), "stage_method": ("config.stage_method", None),
    "int_parsing": ("config.int", None), "float_parsing": ("config.float", None), "bool_parsing": ("config.bool", None),
    "list_type": ("config.list", None), "model_type": ("config.part", None), "model_attributes_type": ("config.part", None),
    "too_long": ("config.too_many", "max_length"), "string_too_long": ("config.too_long", "max_length"),
    "too_short": ("config.none_chosen", None),
    # The settings' own checks: their context's fields fill the message.
    "bad_weights": ("config.bad_weights", "*"), "weights_count": ("config.weights_count", "*"),
    "bad_pattern": ("config.bad_pattern", "*"), "bad_schema": ("config.bad_schema", "*"),
    "bad_schema_json": ("config.bad_schema_json", "*"), "range_order": ("config.range_order", "*"),
    "slow_pattern": ("config.slow_pattern", "*"), "tracker_missing": ("config.tracker_missing", "*"),
    "lora_switch": ("config.lora_switch", "*"),
    **{f"schema_{why}": (f"config.schema_{why}", "*")
       for why in ("remote_ref", "missing_ref", "recursive_ref", "depth", "slow_pattern")},
}


def validation_message(error: dict) -> Msg:
    key, context = _ERROR_TEXT.get(error["type"], ("config.other", None))
    if key == "config.other":  # pydantic's own sentence is English and may echo the input: not shown
        return Msg(key)
    if key == "config.choice":
        return Msg(key, expected=error.get("ctx", {}).get("expected", ""))
    if key == "config.bad_mapping":
        return Msg(key, part=error.get("ctx", {}).get("part", ""))
    if key == "config.stage_method":
        return Msg(key, stage=error["ctx"]["stage"], methods=error["ctx"]["methods"])
    if context == "*":
        return Msg(key, **error.get("ctx", {}))
    return Msg(key, limit=error.get("ctx", {}).get(context)) if context else Msg(key)


def problems_from_validation_error(err: ValidationError, prefix: str = "") -> list[Problem]:
    out = []
    for e in err.errors():
        where = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        out.append((where or "(top)", validation_message(e)))
    return out


def validate_settings(data: Any, prefix: str = "settings") -> tuple[Settings | None, list[Problem]]:
    try:
        return Settings.model_validate(data), []
    except ValidationError as err:
        return None, problems_from_validation_error(err, prefix)
