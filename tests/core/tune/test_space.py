"""The --param grammar and the [tune] table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from torchsuite.core.config import option, parse_override
from torchsuite.core.errors import ConfigError
from torchsuite.core.train.config import TrainableConfig
from torchsuite.core.tune import format_override, parse_param, parse_params, split_tune_table
from torchsuite.core.tune.settings import tune_config


@dataclass
class _Model:
    d_model: int = option(128, "width")
    act: str = option("gelu", "activation")


@dataclass
class _Cfg(TrainableConfig):
    model: _Model = field(default_factory=_Model)


def test_each_kind_parses_to_its_distribution() -> None:
    lr = parse_param("optim.lr", "loguniform:1e-4:1e-2").distribution
    assert lr == FloatDistribution(1e-4, 1e-2, log=True)
    assert parse_param("x", "uniform:0:0.5:0.1").distribution == FloatDistribution(0, 0.5, step=0.1)
    assert parse_param("x", "int:2:8:2").distribution == IntDistribution(2, 8, step=2)
    assert parse_param("x", "logint:8:128").distribution == IntDistribution(8, 128, log=True)
    choice = parse_param("model.d_model", "choice:128,256,512").distribution
    assert choice == CategoricalDistribution([128, 256, 512])
    assert parse_param("o", "choice:adamw,sgd").distribution == CategoricalDistribution(
        ["adamw", "sgd"])
    assert parse_param("o", [1, 2]).distribution == CategoricalDistribution([1, 2])


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("logunifrom:1:2", "Did you mean 'loguniform'"),
        ("loguniform:0:1", "LO > 0"),
        ("uniform:2:1", "LO <= HI"),
        ("int:1.5:3", "not an integer"),
        ("loguniform:1e-4", "wrong number of fields"),
        ("choice:", "no choices"),
        ("choice:1,1", "repeat"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_param("k", spec)


def test_keys_are_checked_against_the_task_config() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'optim\.lr'"):
        parse_params({"optim.lrr": "loguniform:1e-4:1e-2"}, _Cfg)
    with pytest.raises(ConfigError, match="integer key"):
        parse_params({"model.d_model": "uniform:64:512"}, _Cfg)
    with pytest.raises(ConfigError, match="nothing to tune"):
        parse_params({}, _Cfg)
    assert [p.key for p in parse_params({"model.act": "choice:gelu,relu"}, _Cfg)] == ["model.act"]


@pytest.mark.parametrize("value", [1e-05, 0.1 + 0.2, 3, True, "adam w", 'q"uote'])
def test_overrides_round_trip_exactly(value: object) -> None:
    assert parse_override(format_override("a.b", value)) == ("a.b", value)


def test_tune_table_is_taken_out_of_config_files(tmp_path: Path) -> None:
    first = tmp_path / "a.toml"
    first.write_text(
        '[train]\nmax_steps = 5\n[tune]\ntrials = 7\n[tune.params]\n'
        '"optim.lr" = "loguniform:1e-4:1e-2"\nmodel.d_model = [128, 256]\n'
    )
    second = tmp_path / "b.toml"
    second.write_text('[tune]\nmetric = "dev.mse"\n[tune.params]\n"optim.lr" = "uniform:0:1"\n')
    table, rest = split_tune_table([first, second])
    assert rest == {"train": {"max_steps": 5}}
    assert table["params"] == {"optim.lr": "uniform:0:1", "model.d_model": [128, 256]}
    cfg = tune_config(table, trials=None, direction="max", params={"model.act": "choice:a,b"})
    assert (cfg.trials, cfg.metric, cfg.direction) == (7, "dev.mse", "max")  # flags win, None keeps
    assert set(cfg.params) == {"optim.lr", "model.d_model", "model.act"}
    with pytest.raises(ConfigError, match=r"Did you mean 'tune\.trials'"):
        tune_config({"trialz": 3})
    with pytest.raises(ConfigError, match="dev metric"):
        tune_config({}, metric="loss")
