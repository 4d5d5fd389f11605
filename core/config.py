"""Typed configs: dataclass defaults <- TOML file <- dotted overrides.

Every task owns a ``Config`` dataclass (a subclass of :class:`BaseConfig`) whose
fields are all defaulted and documented with :func:`option`. The core composes
the final config in three layers::

    cfg = resolve_config(MyTask.Config, files=["exp.toml"], overrides=["model.dim=64"])

Unknown keys are refused with the closest valid key; values are checked against
the field's type, choices and bounds, and the error names key, value and the
expected type. :func:`to_toml` writes the resolved config back (with the help
texts as comments) so a run directory's ``config.toml`` can be fed straight into
``--config``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from .errors import ConfigError

__all__ = [
    "BaseConfig",
    "config_keys",
    "from_dict",
    "load_toml",
    "option",
    "parse_override",
    "resolve_config",
    "to_dict",
    "to_toml",
]

C = TypeVar("C")
_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    help: str = "",
    *,
    choices: Sequence[Any] | None = None,
    ge: float | None = None,
    le: float | None = None,
    default_factory: Any = _MISSING,
) -> Any:
    """A documented, validated dataclass field.

    Args:
        default: The default value (use ``default_factory`` for lists and sections).
        help: One line shown by ``suite config show`` as a comment above the key.
        choices: Allowed values, if the field is an enumeration.
        ge: Inclusive lower bound for numbers.
        le: Inclusive upper bound for numbers.
        default_factory: Zero-argument callable producing the default.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "ge": ge, "le": le}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class BaseConfig:
    """Root of every task config. Tasks subclass it and add their own sections.

    The trainer's sections (``train``, ``optim``) are added by
    :class:`torchsuite.core.train.TrainableConfig`; tasks normally subclass that.
    """

    def validate(self) -> None:
        """Cross-field checks; override and raise :class:`ConfigError` with a clear message."""


# --------------------------------------------------------------------------- dict <-> dataclass


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def config_keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """All dotted leaf keys of a config class mapped to their type annotation."""
    keys: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        dotted = f"{prefix}{f.name}"
        if _is_section(tp):
            keys.update(config_keys(tp, dotted + "."))
        else:
            keys[dotted] = tp
    return keys


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple, dict):
        inner = ", ".join(_type_name(a) for a in get_args(tp) if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; returns the value converted where lossless."""
    origin = get_origin(tp)
    bad = ConfigError(
        f"config key '{key}' has value {value!r} ({type(value).__name__}), expected "
        f"{_type_name(tp)}. Fix it in your --config file or override it, e.g. {key}=<value>."
    )
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise bad
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if isinstance(value, str) and all(a is str for a in args):
            # a shell-friendly override: `train.callbacks=ema,swa` or `train.callbacks=[ema]`
            words = value.strip().removeprefix("[").removesuffix("]").split(",")
            value = [w.strip().strip("'\"") for w in words if w.strip()]
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and args and len(get_args(tp)) == len(args) and len(value) != len(args):
            raise bad
        item_tp = args[0] if args else Any
        items = [
            _coerce(f"{key}[{i}]", v, args[i] if origin is tuple and len(args) > 1 else item_tp)
            for i, v in enumerate(value)
        ]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if isinstance(tp, type) and not isinstance(value, tp):
        raise bad
    return value


def _check_field(key: str, value: Any, f: dataclasses.Field[Any]) -> None:
    meta = f.metadata
    choices = meta.get("choices")
    if choices and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"config key '{key}' has value {value!r}; expected one of "
            f"{', '.join(repr(c) for c in choices)}.{hint}"
        )
    lo, hi = meta.get("ge"), meta.get("le")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise ConfigError(f"config key '{key}' is {value!r}; it must be >= {lo}.")
        if hi is not None and value > hi:
            raise ConfigError(f"config key '{key}' is {value!r}; it must be <= {hi}.")


def _unknown_key(key: str, valid: Iterable[str]) -> ConfigError:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown config key '{key}'.{hint} "
        f"Run `suite config show TASK` to list every key with its default."
    )


def _section_default(f: dataclasses.Field[Any]) -> Any:
    """The default instance a parent gives a section (its ``default_factory``), if any."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    if f.default is not dataclasses.MISSING:
        return copy.deepcopy(f.default)
    return None


def from_dict(cls: type[C], data: Mapping[str, Any], prefix: str = "",
              base: C | None = None) -> C:
    """Build config ``cls`` from nested mappings, validating every key and value.

    Keys missing from ``data`` keep ``base``'s values when given, else the class defaults.
    A section set only in part keeps the defaults its parent gives it (a task's
    ``train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=400))``
    stays at 400 steps when only ``train.batch_size`` is overridden).
    """
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise _unknown_key(key, config_keys(cls, prefix).keys() | _sections(cls, prefix))
        tp = hints[name]
        if _is_section(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key '{key}' is a section (a TOML table [{key}]), not a value; "
                    f"set its keys instead, e.g. {key}.<name>=<value>."
                )
            parent = getattr(base, name) if base is not None else _section_default(fields[name])
            kwargs[name] = from_dict(tp, value, key + ".", base=parent)
        else:
            coerced = _coerce(key, value, tp)
            _check_field(key, coerced, fields[name])
            kwargs[name] = coerced
    if base is not None:
        return dataclasses.replace(base, **kwargs)  # type: ignore[type-var]
    return cls(**kwargs)


def _sections(cls: type, prefix: str = "") -> set[str]:
    out: set[str] = set()
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _is_section(hints[f.name]):
            out.add(f"{prefix}{f.name}")
            out |= _sections(hints[f.name], f"{prefix}{f.name}.")
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain-dict view of a config (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


# --------------------------------------------------------------------------- layering


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file with an error that names the file and line."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"config file '{path}' does not exist; check the --config path."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}.") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``a.b=value``; the value is read as TOML (``3``, ``1e-3``, ``true``, ``["x"]``)
    and falls back to a plain string (``optim.name=adamw``)."""
    if "=" not in text:
        raise ConfigError(
            f"override '{text}' is not of the form key=value (e.g. train.max_steps=100)."
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = dict(v) if isinstance(v, Mapping) else v
    return base


def _set_dotted(tree: dict[str, Any], key: str, value: Any, cls: type) -> None:
    valid = config_keys(cls)
    if key in _sections(cls):
        raise ConfigError(
            f"config key '{key}' is a section (a TOML table [{key}]), not a value; "
            f"set its keys instead, e.g. {key}.<name>=<value>."
        )
    if key not in valid:
        raise _unknown_key(key, valid.keys())
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def resolve_config(
    cls: type[C],
    files: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> C:
    """Compose defaults <- ``base`` <- each TOML file <- dotted overrides, validated.

    Args:
        cls: The task's config dataclass.
        files: TOML files applied in order.
        overrides: ``key=value`` strings applied last.
        base: An already-resolved config dict (e.g. a run's saved config) applied first.
    """
    tree: dict[str, Any] = {}
    if base:
        _merge(tree, base)
    for file in files:
        _merge(tree, load_toml(file))
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value, cls)
    cfg = from_dict(cls, tree)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


# --------------------------------------------------------------------------- TOML output


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        raise ConfigError("None cannot be written to TOML")
    return _toml_value(str(value))


def to_toml(cfg: Any, comments: bool = True, header: str = "") -> str:
    """Render a config as TOML; ``None`` values are written as commented-out keys."""
    lines: list[str] = [f"# {line}" for line in header.splitlines()] if header else []

    def emit(obj: Any, prefix: str) -> None:
        hints = _hints(type(obj))
        scalars = [f for f in dataclasses.fields(obj) if not _is_section(hints[f.name])]
        sections = [f for f in dataclasses.fields(obj) if _is_section(hints[f.name])]
        if prefix and scalars:
            if lines:
                lines.append("")
            lines.append(f"[{prefix}]")
        for f in scalars:
            value = getattr(obj, f.name)
            help_text = f.metadata.get("help", "")
            if comments and help_text:
                choices = f.metadata.get("choices")
                extra = f" (one of: {', '.join(map(str, choices))})" if choices else ""
                lines.append(f"# {help_text}{extra}")
            if value is None:
                lines.append(f"# {f.name} =   (unset)")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        for f in sections:
            emit(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name)

    emit(cfg, "")
    return "\n".join(lines) + "\n"
