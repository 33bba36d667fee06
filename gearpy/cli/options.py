"""Click options shared by gearpy-server, gearpy-worker and gearpy-client.

Every option that is also a setting defaults to None on the command line, so that an unset flag
never hides the config file or the environment (gearpy.config layers them). The default a user
sees in ``--help`` therefore comes from the config dataclass (:func:`finish_help`), the one place
where defaults live; the help of all three commands also lists the exit codes and environment
variables the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click
import yaml

from gearpy import __version__, exitcodes
from gearpy.config import ENV_PREFIX, field_default, parse_server_address
from gearpy.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

#: A TCP port: 0 and numbers above 65535 are usage errors, never wrapped or "ephemeral" ports.
PORT = click.IntRange(1, 65535)

#: click settings of every command: -h as well as --help, and help wide enough for option tables.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ServerAddress(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """``HOST[:PORT]`` (``[v6]:PORT``), checked at parse time so a bad port is a usage error."""

    name = "HOST[:PORT]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            parse_server_address(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


def version_option(prog: str, detail: str = "") -> Callable[[F], F]:
    """``-V/--version``: print ``PROG VERSION`` (and ``(DETAIL)`` when given) and exit 0."""
    suffix = f" ({detail})" if detail else ""
    return click.version_option(
        __version__, "-V", "--version", prog_name=prog, message=f"%(prog)s %(version)s{suffix}"
    )


def print_config_option() -> Callable[[F], F]:
    """``--print-config``: print the effective configuration (YAML, passwords hidden) and exit."""
    return click.option(
        "--print-config", is_flag=True, help="Print the effective configuration (YAML) and exit."
    )


def echo_config(section: str, settings: dict[str, Any]) -> None:
    """``--print-config``'s output: the effective settings as the YAML section they would be read from."""
    click.echo(yaml.safe_dump({section: settings}, sort_keys=False), nl=False)


def config_option(sections: str, **kw: Any) -> Callable[[F], F]:
    """``--config FILE``: the YAML file shared by the three programs."""
    return click.option(
        "--config",
        "config_file",
        default=None,
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help=f"YAML config file ({sections}); shared by server, worker and client.",
        **kw,
    )


def servers_option(**kw: Any) -> Callable[[F], F]:
    """``-s/--server HOST[:PORT]``, repeatable: the job servers of a worker or a client."""
    return click.option(
        "-s",
        "--server",
        "servers",
        multiple=True,
        type=ServerAddress(),
        metavar="HOST[:PORT]",
        help="Gearman server; repeat for several.",
        **kw,
    )


def client_tls_options(**kw: Any) -> Callable[[F], F]:
    """``--ssl``, ``--ssl-ca-file``, ``--ssl-certificate``, ``--ssl-key`` of a worker or client."""
    options = [
        click.option(
            "--ssl",
            is_flag=True,
            default=None,
            help="Connect with TLS (the server's certificate is verified).",
            **kw,
        ),
        click.option("--ssl-ca-file", metavar="FILE", help="CA that signed the servers' certificates.", **kw),
        click.option("--ssl-certificate", metavar="FILE", help="Client certificate (PEM).", **kw),
        click.option("--ssl-key", metavar="FILE", help="Client private key (PEM).", **kw),
    ]
    return _compose(options)


def log_level_option(flag: str, name: str) -> Callable[[F], F]:
    """The log level (``--verbose`` for the server, as gearmand; ``--log-level`` for the worker)."""
    return click.option(
        flag, name, help="Log level: DEBUG, INFO, NOTICE, WARNING, ERROR (gearmand's names too)."
    )


def log_format_option() -> Callable[[F], F]:
    """``--log-format text|json``."""
    return click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format.")


def _compose(decorators: list[Callable[[F], F]]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def show(value: Any) -> str:
    """A default as the help shows it: ``none``, ``off``/``on``, lists comma-separated."""
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def finish_help(command: click.Command, config_cls: type, program: str) -> None:
    """Show every option's default in one style and append exit codes and environment variables.

    Defaults come from ``config_cls`` (an option named like a field shows the field's default); a
    help text may state its own ``[default: ...]``; other flags show ``off``, other options ``none``.
    """
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden or param.name in ("help", "version"):
            continue
        name = param.name or ""
        if "[default:" in (param.help or ""):
            continue
        if name in fields:
            text = show(field_default(config_cls, name))
        else:
            text = "off" if param.is_flag else "none"
        # Appended to the help rather than click's show_default, which would print "(text)".
        param.help = f"{param.help or ''}  [default: {text}]".lstrip()
    env = ", ".join(ENV_PREFIX + name.upper() for name in sorted(fields))
    epilog = [
        command.epilog or "",
        "\b\nExit codes:\n" + exitcodes.help_table(program),
        f"Environment: every setting is also a variable ({env}); lists are comma-separated. "
        "Precedence: defaults < config file < environment < options.",
    ]
    command.epilog = "\n\n".join(part for part in epilog if part)
