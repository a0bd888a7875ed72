"""Value checks and the builder that turns a parsed mapping into frozen dataclasses.

Shared by config.py (params.yaml's sections) and core/variants.py (a variant's pieces), so that every
refusal has one wording: the key's dotted name, then what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, get_args, get_origin

from vaebench.errors import ConfigError


def choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return value


def int_range(value: Any, key: str, lo: int | None, hi: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise ConfigError(f"{key}: must be {bounds}, got {value}")
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are."""
    origin = get_origin(tp)
    if origin is types.UnionType:  # `int | None`: None is the field's unset default, never a value to write
        (tp,) = (a for a in get_args(tp) if a is not type(None))
        return _coerce(value, tp, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        (_, inner) = get_args(tp)
        return {str(k): build(inner, v, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner, _ellipsis) = get_args(tp)
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, str):
            value = number_from_text(value, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .inf and .nan: no parameter of vaebench takes them
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug in this module, not in params


def coerce_field(cls: type, name: str, value: Any, key: str) -> Any:
    """`value` checked against the annotation of field `name` of the dataclass `cls`."""
    return _coerce(value, typing.get_type_hints(cls)[name], key)


def number_from_text(text: str, key: str) -> float:
    """A number that YAML 1.1 left as a string: `1e-3` (no dot, so not a float to PyYAML), `1E-3`.

    Only decimal numbers pass; words, and the `nan`/`inf` spellings Python's float() would accept, are refused.
    """
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text.strip()):
        raise ConfigError(f"{key}: expected a number, got {text!r}")
    return float(text)


def build(cls: type, data: Any, prefix: str) -> Any:
    """An instance of the dataclass `cls` from a mapping; unknown keys and bad values name their dotted key.

    A class with a `from_mapping(**fields)` classmethod builds through it (a variant resolves its pieces so),
    and the bare field name its refusals start with gets `prefix.` in front.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'params'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"{where}{unknown[0]}: unknown key (allowed: {', '.join(fields)})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build(tp, value, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    from_mapping = getattr(cls, "from_mapping", None)
    if from_mapping is not None:
        try:
            return from_mapping(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{prefix}.{e}") from None
    return cls(**kwargs)
