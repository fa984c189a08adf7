"""The ``sitewatch`` command. One module per command in this package, as rasterio's ``rio``.

Errors raised on purpose (:class:`~sitewatch.errors.SitewatchError`) become one line on
stderr and the error's exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import SitewatchError

#: Command modules; each exposes ``command`` (a click command or group).
COMMANDS = ("demo", "monitor", "review", "timeline", "verify", "sites", "scan", "qgis")


_DEBUG = {"on": False}


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        _DEBUG["on"] = True
    return value


def _with_debug(cmd: click.Command) -> click.Command:
    """``--debug`` is accepted after any command too (``sitewatch verify --debug``)."""
    if not any(p.name == "debug" for p in cmd.params):
        cmd.params.append(click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True,
                                       callback=_set_debug, help="Show tracebacks instead of one-line errors."))
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _with_debug(sub)
    return cmd


class _Group(click.Group):
    """Loads command modules lazily so ``--help`` and quick commands start fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [c for c in COMMANDS if self._load(c) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name) if name in COMMANDS else None

    @staticmethod
    def _load(name: str) -> click.Command | None:
        try:
            mod = importlib.import_module(f"sitewatch.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sitewatch.cli.{name}":
                return None
            raise
        cmd = getattr(mod, "command", None)
        return _with_debug(cmd) if cmd is not None else None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sitewatch")
@click.option("--debug", is_flag=True, is_eager=True, callback=_set_debug,
              help="Show tracebacks instead of one-line errors (also accepted after the command).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Watch candidate detention sites from space.

    Pull public imagery for a list of sites, find new or removed buildings, walls, fences
    and watchtowers, and write dated findings for people to review into a GeoPackage
    that opens in QGIS.
    """
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one clear line and an exit code for every expected failure."""
    _DEBUG["on"] = False
    try:
        cli.main(args=argv, prog_name="sitewatch", standalone_mode=False)
    except SitewatchError as exc:
        if _DEBUG["on"]:
            raise
        click.echo(f"sitewatch: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("sitewatch: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("sitewatch: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:
        if _DEBUG["on"]:
            raise
        click.echo(f"sitewatch: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
