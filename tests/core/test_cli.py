"""The ``suite`` command line, run as a user would (fresh interpreter per call)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from suite_testing import install_fake_distribution, run_suite

import torchsuite


def test_version(tmp_path: Path) -> None:
    out = run_suite(["--version"], tmp_path)
    assert out.returncode == 0 and torchsuite.__version__ in out.stdout


def test_plugins_and_tasks_list_builtins(tmp_path: Path) -> None:
    out = run_suite(["plugins"], tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("music", "translation", "driving"):
        assert name in out.stdout
    tasks = run_suite(["tasks"], tmp_path)
    assert tasks.returncode == 0 and "status" in tasks.stdout.splitlines()[0]


def test_broken_plugin_does_not_break_the_cli(tmp_path: Path) -> None:
    site = install_fake_distribution(
        tmp_path / "site",
        "broken-plugin",
        {"broken_plugin.py": "raise ImportError('kaput')\n"},
        {"broken": "broken_plugin"},
    )
    tasks = run_suite(["tasks"], tmp_path, [site])
    assert tasks.returncode == 0
    assert "music" in tasks.stdout
    assert "plugin 'broken' was skipped: ImportError: kaput" in tasks.stderr
    plugins = run_suite(["plugins"], tmp_path, [site])
    assert plugins.returncode == 0
    assert "broken-plugin" in plugins.stdout and "kaput" in plugins.stdout
    strict = run_suite(["tasks"], tmp_path, [site], env={"SUITE_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "plugin 'broken'" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_config_show_is_valid_commented_toml(tmp_path: Path, template_site: Path) -> None:
    out = run_suite(
        ["config", "show", "template-regression", "model.hidden=7"], tmp_path, [template_site]
    )
    assert out.returncode == 0, out.stderr
    assert "# hidden units" in out.stdout
    data = tomllib.loads(out.stdout)
    assert data["model"]["hidden"] == 7 and data["train"]["max_steps"] >= 1


def test_unknown_key_is_one_paragraph_with_suggestion(tmp_path: Path, template_site: Path) -> None:
    out = run_suite(
        ["train", "template-regression", "train.max_stepz=3"], tmp_path, [template_site]
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "Did you mean 'train.max_steps'" in " ".join(out.stderr.split())
    assert not (tmp_path / "runs").exists()  # nothing was created for a rejected command


def test_debug_shows_traceback(tmp_path: Path, template_site: Path) -> None:
    out = run_suite(
        ["--debug", "train", "template-regression", "train.max_stepz=3"], tmp_path, [template_site]
    )
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_placeholder_task_refuses_to_train_clearly(tmp_path: Path) -> None:
    site = install_fake_distribution(
        tmp_path / "site",
        "wip-plugin",
        {
            "wip_plugin.py": """
            from torchsuite.core import Task, TaskStatus, hookimpl
            class Wip(Task):
                name = "wip"
                status = TaskStatus.PLACEHOLDER
                description = "coming soon"
            @hookimpl
            def register_tasks(register):
                register(Wip)
        """
        },
        {"wip": "wip_plugin"},
    )
    tasks = run_suite(["tasks"], tmp_path, [site])
    assert any(
        line.startswith("wip") and "placeholder" in line for line in tasks.stdout.splitlines()
    )
    out = run_suite(["train", "wip"], tmp_path, [site])
    assert out.returncode == 2 and "placeholder" in out.stderr and "Traceback" not in out.stderr


def test_unknown_task(tmp_path: Path) -> None:
    out = run_suite(["train", "no-such-task"], tmp_path)
    assert out.returncode == 2 and "unknown task 'no-such-task'" in out.stderr


def test_prepare_flags_become_data_overrides(tmp_path: Path, template_site: Path) -> None:
    out = run_suite(
        ["prepare", "template-regression", "--features", "5", "--noise=0.5", "--dir", "my data"],
        tmp_path,
        [template_site],
    )
    assert out.returncode == 0, out.stderr
    assert "my data" in out.stdout
    bad = run_suite(
        ["prepare", "template-regression", "--featurez", "5"], tmp_path, [template_site]
    )
    assert bad.returncode == 2 and "Did you mean 'data.features'" in " ".join(bad.stderr.split())
    other = run_suite(["tasks", "--bogus"], tmp_path)
    assert other.returncode == 2 and "unrecognized arguments: --bogus" in other.stderr


def test_overrides_after_flags_are_kept(tmp_path: Path, template_site: Path) -> None:
    # argparse alone fills the positional override list once and rejects later KEY=VALUE words
    out = run_suite(
        ["train", "template-regression", "--name", "late", "train.max_steps=2"],
        tmp_path,
        [template_site],
    )
    assert out.returncode == 0, out.stderr
    saved = tomllib.loads((tmp_path / "runs/template-regression/late/config.toml").read_text())
    assert saved["train"]["max_steps"] == 2


BROKEN_VERB = '''
from torchsuite.core import hookimpl


def _configure(parser):
    raise ImportError("no module named 'missing_dep'")


@hookimpl
def register_commands(cli):
    cli.add_command("wobble", run=lambda args: 0, help="a verb whose options fail",
                    configure=_configure)
'''


def test_a_verb_that_fails_to_set_up_breaks_only_itself(tmp_path: Path) -> None:
    site = install_fake_distribution(tmp_path / "site", "wobbly-plugin",
                                     {"wobbly_plugin.py": BROKEN_VERB}, {"wobbly": "wobbly_plugin"})
    tasks = run_suite(["tasks"], tmp_path, [site])
    assert tasks.returncode == 0 and "music" in tasks.stdout
    verb = run_suite(["wobble"], tmp_path, [site])
    assert verb.returncode == 2 and "Traceback" not in verb.stderr
    assert "could not set up its options" in " ".join(verb.stderr.split())
    assert "missing_dep" in verb.stderr
