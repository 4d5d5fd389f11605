"""Search spaces: ``--param key=spec`` strings turned into Optuna distributions.

Grammar of a spec (the part after ``=``)::

    loguniform:LO:HI        float sampled on a log scale       optim.lr=loguniform:1e-4:1e-2
    uniform:LO:HI[:STEP]    float, optionally on a grid         model.dropout=uniform:0:0.3
    int:LO:HI[:STEP]        integer (inclusive bounds)          model.layers=int:2:6
    logint:LO:HI            integer on a log scale              train.batch_size=logint:8:128
    choice:A,B,...          one of the listed values            model.d_model=choice:128,256,512

Choice values are read as TOML scalars (``128``, ``1e-3``, ``true``) and fall back
to plain strings (``choice:adamw,sgd``). In a ``[tune.params]`` table a TOML list
(``"model.d_model" = [128, 256]``) is the same as ``choice:``.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ..config import config_keys
from ..errors import ConfigError

__all__ = ["Param", "format_override", "parse_param", "parse_params"]

_KINDS = ("loguniform", "uniform", "int", "logint", "choice")
_GRAMMAR = (
    "Expected KEY=KIND:ARGS with KIND one of loguniform:LO:HI, uniform:LO:HI[:STEP], "
    "int:LO:HI[:STEP], logint:LO:HI, choice:A,B,... (e.g. optim.lr=loguniform:1e-4:1e-2)."
)


@dataclass(frozen=True)
class Param:
    """One tuned config key.

    Attributes:
        key: Dotted config key (``optim.lr``).
        spec: The spec text as the user wrote it (stored with the study).
        distribution: The Optuna distribution sampled for this key.
    """

    key: str
    spec: str
    distribution: BaseDistribution

    def suggest(self, trial: optuna.Trial) -> Any:
        """Sample a value for this key in ``trial``."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(self.key, list(d.choices))
        if isinstance(d, IntDistribution):
            return trial.suggest_int(self.key, d.low, d.high, step=d.step, log=d.log)
        assert isinstance(d, FloatDistribution)
        return trial.suggest_float(self.key, d.low, d.high, step=d.step, log=d.log)

    def boundary_values(self) -> list[Any]:
        """Values worth validating against the config up front (bounds or every choice)."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        assert isinstance(d, (FloatDistribution, IntDistribution))
        return [d.low, d.high]


def _scalar(text: str) -> Any:
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _number(key: str, text: str, what: str, integer: bool) -> float | int:
    value = _scalar(text)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"--param {key}: {what} '{text}' is not {kind}. {_GRAMMAR}")
    return value


def parse_param(key: str, spec: str | Sequence[Any]) -> Param:
    """Parse one search-space entry.

    Args:
        key: Dotted config key.
        spec: A spec string (see the module docstring) or a list of choices.

    Raises:
        ConfigError: The spec does not follow the grammar or its bounds are empty.
    """
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        choices = list(spec)
        text = "choice:" + ",".join(str(c) for c in choices)
        return _categorical(key, text, choices)
    if not isinstance(spec, str):
        raise ConfigError(f"--param {key}: spec {spec!r} is not text or a list. {_GRAMMAR}")
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in _KINDS:
        close = difflib.get_close_matches(kind, _KINDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"--param {key}={spec}: unknown kind '{kind}'.{hint} {_GRAMMAR}")
    if kind == "choice":
        choices = [_scalar(v) for v in rest.split(",") if v.strip()]
        return _categorical(key, spec, choices)
    parts = rest.split(":")
    integer = kind in ("int", "logint")
    max_parts = 3 if kind in ("uniform", "int") else 2
    if not 2 <= len(parts) <= max_parts:
        raise ConfigError(f"--param {key}={spec}: wrong number of fields. {_GRAMMAR}")
    low = _number(key, parts[0], "lower bound", integer)
    high = _number(key, parts[1], "upper bound", integer)
    step = _number(key, parts[2], "step", integer) if len(parts) == 3 else None
    log = kind in ("loguniform", "logint")
    if high < low or (log and low <= 0) or (step is not None and step <= 0):
        raise ConfigError(
            f"--param {key}={spec}: bounds must satisfy LO <= HI"
            + (", LO > 0 for a log scale" if log else "")
            + (", STEP > 0" if step is not None else "")
            + "."
        )
    if integer:
        dist: BaseDistribution = IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    else:
        dist = FloatDistribution(float(low), float(high), log=log, step=step)
    return Param(key, spec, dist)


def _categorical(key: str, spec: str, choices: list[Any]) -> Param:
    if not choices:
        raise ConfigError(f"--param {key}={spec}: no choices given. {_GRAMMAR}")
    for c in choices:
        if c is not None and not isinstance(c, (bool, int, float, str)):
            raise ConfigError(
                f"--param {key}={spec}: choice {c!r} is not a number, boolean or string."
            )
    if len(set(map(repr, choices))) != len(choices):
        raise ConfigError(f"--param {key}={spec}: choices repeat a value.")
    return Param(key, spec, CategoricalDistribution(choices))


def parse_params(
    specs: Mapping[str, str | Sequence[Any]], config_cls: type | None = None
) -> list[Param]:
    """Parse a ``{key: spec}`` mapping, checking keys (and types) against ``config_cls``.

    Raises:
        ConfigError: An unknown config key (with the closest valid one), a float range
            on an integer key, or a malformed spec.
    """
    valid = config_keys(config_cls) if config_cls is not None else None
    params: list[Param] = []
    for key, spec in specs.items():
        param = parse_param(key, spec)
        if valid is not None:
            if key not in valid:
                close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise ConfigError(
                    f"--param {key}: unknown config key '{key}'.{hint} "
                    f"Run `suite config show TASK` to list every key."
                )
            if valid[key] is int and isinstance(param.distribution, FloatDistribution):
                raise ConfigError(
                    f"--param {key}={spec}: '{key}' is an integer key but the range is of "
                    f"floats; use int:LO:HI or logint:LO:HI."
                )
        params.append(param)
    if not params:
        raise ConfigError(
            "nothing to tune: give at least one --param KEY=SPEC (or a [tune.params] table). "
            + _GRAMMAR
        )
    return params


def format_override(key: str, value: Any) -> str:
    """``key=value`` text that :func:`~torchsuite.core.config.parse_override` reads back
    to exactly ``value`` (strings are quoted, floats keep full precision)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)  # repr round-trips floats exactly; TOML reads 1e-05, inf, nan
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        raise ConfigError(f"cannot write {key}={value!r} as a config override.")
    return f"{key}={text}"
