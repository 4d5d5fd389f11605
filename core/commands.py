"""How plugins (and the core itself) add verbs to the ``suite`` command line.

``register_commands(cli)`` receives a :class:`CommandSet`::

    @hookimpl
    def register_commands(cli):
        cli.add_command(
            "generate", group="music", help="write a new piece as MIDI",
            configure=lambda p: p.add_argument("--bars", type=int, default=16),
            run=_generate,            # called with the parsed argparse.Namespace
        )

which gives ``suite music generate --bars 8``. ``run`` returns an exit code (or
``None`` for 0) and raises :class:`~torchsuite.core.errors.SuiteError` for user
mistakes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Command", "CommandSet"]

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], "int | None"]


@dataclass
class Command:
    """One verb: ``suite [group] name``."""

    name: str
    run: Run
    help: str = ""
    group: str | None = None
    configure: Configure | None = None
    plugin: str = ""
    #: If set, unknown ``--some-flag VALUE`` words become overrides ``<section>.some_flag=VALUE``
    #: (``suite prepare translation --src a.de`` == ``data.src=a.de``).
    flag_section: str | None = None


@dataclass
class CommandSet:
    """Collects verbs from all plugins; the CLI turns them into argparse sub-commands."""

    commands: list[Command] = field(default_factory=list)
    group_help: dict[str, str] = field(default_factory=dict)
    current_plugin: str = ""

    def add_command(
        self,
        name: str,
        *,
        run: Run,
        help: str = "",
        group: str | None = None,
        configure: Configure | None = None,
        flag_section: str | None = None,
    ) -> None:
        """Register ``suite [group] name``; see the module docstring.

        ``flag_section`` turns unknown ``--flags`` into config overrides of that section.
        """
        for cmd in self.commands:
            if cmd.name == name and cmd.group == group:
                where = f"{group} {name}" if group else name
                raise ValueError(
                    f"command 'suite {where}' is added by both plugin '{cmd.plugin}' "
                    f"and plugin '{self.current_plugin}'"
                )
        self.commands.append(
            Command(name, run, help, group, configure, self.current_plugin, flag_section)
        )

    def add_group(self, group: str, help: str) -> None:
        """Describe a group of verbs (``suite music --help`` shows it)."""
        self.group_help[group] = help
