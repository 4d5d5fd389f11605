"""Config layering (defaults <- TOML <- overrides), validation and TOML round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from torchsuite.core import (
    ConfigError,
    TrainableConfig,
    TrainConfig,
    option,
    parse_override,
    resolve_config,
    to_dict,
    to_toml,
)


@dataclass
class Model:
    d_model: int = option(64, "width", ge=8)
    act: str = option("gelu", "activation", choices=("gelu", "relu"))
    layers: list[int] = option([1, 2], "layer sizes")
    dropout: float = option(0.1, "dropout", ge=0.0, le=1.0)
    name: str | None = option(None, "optional name")


@dataclass
class Cfg(TrainableConfig):
    model: Model = field(default_factory=Model)

    def validate(self) -> None:
        if self.model.d_model % 8:
            raise ConfigError("model.d_model must be a multiple of 8")


def test_defaults_then_file_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[model]\nd_model = 128\nact = 'relu'\n[train]\nmax_steps = 7\n")
    cfg = resolve_config(Cfg, files=[f], overrides=["model.d_model=256", "optim.lr=1e-3"])
    assert cfg.model.d_model == 256  # override beats file
    assert cfg.model.act == "relu"  # file beats default
    assert cfg.train.max_steps == 7
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.model.dropout == pytest.approx(0.1)  # default kept


def test_later_file_wins(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("[model]\nd_model = 16\nact = 'relu'\n")
    b.write_text("[model]\nd_model = 32\n")
    cfg = resolve_config(Cfg, files=[a, b])
    assert (cfg.model.d_model, cfg.model.act) == (32, "relu")


def test_unknown_key_suggests_closest() -> None:
    with pytest.raises(ConfigError, match=r"train\.max_stepz.*Did you mean 'train\.max_steps'"):
        resolve_config(Cfg, overrides=["train.max_stepz=3"])


def test_unknown_key_in_file_suggests_closest(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[model]\nd_modle = 8\n")
    with pytest.raises(ConfigError, match=r"model\.d_model"):
        resolve_config(Cfg, files=[f])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("model.d_model=abc", r"'model\.d_model' has value 'abc' \(str\), expected int"),
        ("model.d_model=1.5", "expected int"),
        ("model.layers=3", r"expected list\[int\]"),
        ("train.compile=1", "expected bool"),
        ("model.act=tanh", "expected one of 'gelu', 'relu'"),
        ("model.dropout=1.5", "must be <= 1.0"),
        ("model.d_model=4", "must be >= 8"),
        ("model.d_model=12", "multiple of 8"),
        ("model=3", "is a section"),
        ("novalue", "key=value"),
    ],
)
def test_bad_values_name_key_value_and_type(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        resolve_config(Cfg, overrides=[override])


def test_int_accepted_for_float_and_optional() -> None:
    cfg = resolve_config(Cfg, overrides=["optim.lr=1", "model.name=big", "model.layers=[3, 4]"])
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1.0
    assert cfg.model.name == "big"
    assert cfg.model.layers == [3, 4]


def test_parse_override_reads_toml_values_and_plain_strings() -> None:
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a=adamw") == ("a", "adamw")
    assert parse_override('a=["head"]') == ("a", ["head"])
    assert parse_override("a=true") == ("a", True)


def test_toml_round_trip_preserves_config(tmp_path: Path) -> None:
    cfg = resolve_config(Cfg, overrides=["model.d_model=96", "model.name=x", "optim.name=sgd"])
    text = to_toml(cfg)
    assert "# width" in text  # help texts become comments
    f = tmp_path / "resolved.toml"
    f.write_text(text)
    again = resolve_config(Cfg, files=[f])
    assert to_dict(again) == to_dict(cfg)


def test_none_is_written_as_commented_key() -> None:
    text = to_toml(resolve_config(Cfg))
    assert "# name =   (unset)" in text


def test_string_lists_accept_shell_friendly_overrides() -> None:
    for raw in ("ema,swa", "[ema, swa]", '["ema", "swa"]'):
        cfg = resolve_config(Cfg, overrides=[f"train.callbacks={raw}"])
        assert cfg.train.callbacks == ["ema", "swa"], raw
    with pytest.raises(ConfigError, match=r"expected list\[int\]"):
        resolve_config(Cfg, overrides=["model.layers=a,b"])  # only lists of strings



@dataclass
class TaskCfg(TrainableConfig):
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=400))
    model: Model = field(default_factory=lambda: Model(d_model=128))


def test_a_partly_overridden_section_keeps_the_defaults_its_task_gives_it() -> None:
    cfg = resolve_config(TaskCfg, overrides=["train.batch_size=8", "model.act=relu"])
    assert (cfg.train.max_steps, cfg.train.batch_size) == (400, 8)
    assert (cfg.model.d_model, cfg.model.act) == (128, "relu")
    assert resolve_config(TaskCfg, overrides=["train.max_steps=9"]).train.max_steps == 9
