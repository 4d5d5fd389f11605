"""The ``suite`` command line.

Verbs come from the plugin registry: the core's own (``tasks``, ``train``,
``export``...) are registered through the same ``register_commands`` hook as the
plugins' (``suite music generate``). User mistakes raise
:class:`~torchsuite.core.errors.SuiteError` and are printed as one paragraph;
``--debug`` (or ``SUITE_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from .commands import Command
from .errors import PluginError, SuiteError
from .registry import get_registry, strict_plugins

__all__ = ["build_parser", "main"]


def _version() -> str:
    from torchsuite import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The full parser, including every loaded plugin's verbs."""
    registry = get_registry()
    parser = argparse.ArgumentParser(
        prog="suite",
        description="torchsuite: train, evaluate and ship PyTorch task plugins.",
        epilog="`suite tasks` lists the tasks; `suite config show TASK` shows every config key.",
    )
    parser.add_argument("--version", action="version", version=f"torchsuite {_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def attach(sub: argparse._SubParsersAction[argparse.ArgumentParser], cmd: Command) -> None:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for errors",
        )
        p.set_defaults(_command=cmd)
        if cmd.configure is not None:
            try:
                cmd.configure(p)
            except Exception as exc:
                # one plugin's broken verb must not take the whole CLI down with it
                if strict_plugins():
                    raise
                where = f"{cmd.group} {cmd.name}" if cmd.group else cmd.name
                p.set_defaults(_broken=(
                    f"the command `suite {where}` could not set up its options "
                    f"({type(exc).__name__}: {exc}); reinstall or fix the plugin that adds it "
                    "(`suite plugins` shows where it comes from)."))

    for cmd in sorted(registry.commands.commands, key=lambda c: (c.group or c.name, c.name)):
        if cmd.group is None:
            attach(verbs, cmd)
            continue
        if cmd.group not in groups:
            help_text = registry.commands.group_help.get(cmd.group, f"{cmd.group} commands")
            gp = verbs.add_parser(cmd.group, help=help_text, description=help_text)
            groups[cmd.group] = gp.add_subparsers(dest=f"{cmd.group}_verb", metavar="VERB")
            gp.set_defaults(_group_parser=gp)
        attach(groups[cmd.group], cmd)
    return parser


def _extra_overrides(words: list[str], section: str | None) -> tuple[list[str], list[str]]:
    """Words argparse left over -> (config overrides, words still unknown).

    ``KEY=VALUE`` words are overrides (argparse fills the positional list only once, so
    they arrive here when they follow an option). With a flag ``section``, ``--key VALUE``
    and ``--key=VALUE`` become ``section.key=VALUE`` (``--max-len 200`` ->
    ``data.max_len=200``), placed after the ``KEY=VALUE`` words; without one, flags stay
    unknown for argparse to report.
    """
    overrides: list[str] = []
    from_flags: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            key, eq, value = word[2:].partition("=")
            takes_next = not eq and i + 1 < len(words) and not words[i + 1].startswith("--")
            if takes_next:
                value = words[i + 1]
            if section is None:
                unknown += words[i:i + 1 + takes_next]
            elif not key:
                raise SuiteError(f"unexpected argument '{word}'; see `suite ... --help`.")
            elif not eq and not takes_next:
                raise SuiteError(f"flag '{word}' needs a value, e.g. {word} VALUE.")
            else:
                from_flags.append(f"{section}.{key.replace('-', '_')}={_quote(value)}")
            i += 1 + takes_next
            continue
        if "=" in word and not word.startswith("-"):
            overrides.append(word)
        elif section is None:
            unknown.append(word)
        else:
            raise SuiteError(f"unexpected argument '{word}'; see `suite ... --help`.")
        i += 1
    return [*overrides, *from_flags], unknown


def _quote(value: str) -> str:
    """Keep file names and other text as TOML strings; numbers and booleans stay typed."""
    import tomllib

    try:
        tomllib.loads(f"v = {value}")
        return value
    except tomllib.TOMLDecodeError:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _print_error(message: str) -> None:
    width = max(60, min(100, os.get_terminal_size(2).columns if sys.stderr.isatty() else 100))
    print(textwrap.fill(f"error: {message}", width=width, subsequent_indent="  "), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``suite`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SUITE_DEBUG", "") not in ("", "0")
    if debug:
        os.environ["SUITE_DEBUG"] = "1"
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        cmd: Command | None = getattr(args, "_command", None)
        if extra and hasattr(args, "overrides"):
            section = cmd.flag_section if cmd is not None else None
            words, extra = _extra_overrides(extra, section)
            args.overrides = [*args.overrides, *words]
        if extra:
            parser.parse_args(argv)  # let argparse report the unknown words its usual way
        if cmd is None:
            group_parser = getattr(args, "_group_parser", None)
            (group_parser or parser).print_help()
            return 0 if not argv else 2
        broken = getattr(args, "_broken", None)
        if broken:
            raise PluginError(broken)
        code = cmd.run(args)
        return int(code or 0)
    except SuiteError as exc:
        if debug:
            raise
        _print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
