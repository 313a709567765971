"""Operator settings, read in one place: flags, then ``MINIAPP_SYNC_*`` variables, then a TOML file.

Precedence is flag > environment > file > default, per setting; for the two mappings (rewrites
by origin, ``auth.config`` values by key) per entry, so a flag overrides one origin or one key
and keeps the rest. The file is ``--config-file PATH`` (an error when missing), else
``./miniapp-sync.toml`` when it exists::

    store = "postgresql://postgres@127.0.0.1:5432/miniapp_sync"   # or a SQLite path
    secret_key = "env:MINIAPP_KEY"        # env:NAME reads a variable: keep secrets out of the file
    admin_token = "env:ADMIN_TOKEN"
    viewer_token = "env:VIEWER_TOKEN"     # the console's read-only login (D40)
    public_url = "https://sync.example.com"
    default_schedule = "6h"               # sync MiniApps without a schedule of their own this often
    history_days = 30                     # record history kept this long (D39); 0: none written
    log_format = "json"                   # or "console" (the default)
    log_level = "info"                    # debug, info, warning, error

    [rewrites]                            # origin = origin
    "https://api.salla.dev" = "http://127.0.0.1:8765"

    [miniapps.salla.config]               # operator-held auth.config values of one MiniApp
    webhookSecret = "env:SALLA_WEBHOOK_SECRET"

The variables: ``MINIAPP_SYNC_STORE``, ``MINIAPP_SYNC_SECRET_KEY``, ``MINIAPP_SYNC_ADMIN_TOKEN``,
``MINIAPP_SYNC_VIEWER_TOKEN``,
``MINIAPP_SYNC_PUBLIC_URL``, ``MINIAPP_SYNC_DEFAULT_SCHEDULE``, ``MINIAPP_SYNC_HISTORY_DAYS``,
``MINIAPP_SYNC_MAX_RETRY_AFTER`` (seconds; ``max_retry_after = 300`` in the file),
``MINIAPP_SYNC_LOG_FORMAT``, ``MINIAPP_SYNC_LOG_LEVEL``,
``MINIAPP_SYNC_REWRITES`` (``FROM=TO`` pairs separated by spaces or commas),
``MINIAPP_SYNC_CONFIG__<ns>__<key>`` (one ``auth.config`` value) and
``MINIAPP_SYNC_CONFIG_FILE``. Bad input is a ``SettingsError`` that says where (``file:line``,
the variable or the flag), what was expected and what was found; unknown keys in the file are
errors, with a "did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniapp_sync.errors import InstallationError, UsageError, preview

if TYPE_CHECKING:  # network (sockets, addresses, templating) loads only when rewrites are used
    from miniapp_sync.network import Rewrites

FILE_NAME = "miniapp-sync.toml"
PREFIX = "MINIAPP_SYNC_"
# The names the store and the vault read; spelt out, not imported, so that reading the settings
# does not load SQLAlchemy and cryptography (tests/test_settings.py checks they agree).
STORE_VARIABLE = PREFIX + "STORE"
KEY_VARIABLE = PREFIX + "SECRET_KEY"
CONFIG_FILE_VARIABLE = PREFIX + "CONFIG_FILE"
ADMIN_TOKEN_VARIABLE = PREFIX + "ADMIN_TOKEN"
VIEWER_TOKEN_VARIABLE = PREFIX + "VIEWER_TOKEN"
PUBLIC_URL_VARIABLE = PREFIX + "PUBLIC_URL"
DEFAULT_SCHEDULE_VARIABLE = PREFIX + "DEFAULT_SCHEDULE"
REWRITES_VARIABLE = PREFIX + "REWRITES"
HISTORY_DAYS_VARIABLE = PREFIX + "HISTORY_DAYS"
LOG_FORMAT_VARIABLE = PREFIX + "LOG_FORMAT"
LOG_LEVEL_VARIABLE = PREFIX + "LOG_LEVEL"
CONFIG_VARIABLE = PREFIX + "CONFIG__"  # + <ns>__<key>
MAX_RETRY_AFTER_VARIABLE = PREFIX + "MAX_RETRY_AFTER"

_SCALARS = {
    "store": STORE_VARIABLE,
    "secret_key": KEY_VARIABLE,
    "admin_token": ADMIN_TOKEN_VARIABLE,
    "viewer_token": VIEWER_TOKEN_VARIABLE,
    "public_url": PUBLIC_URL_VARIABLE,
    "default_schedule": DEFAULT_SCHEDULE_VARIABLE,
    "log_format": LOG_FORMAT_VARIABLE,
    "log_level": LOG_LEVEL_VARIABLE,
}
# Spelt out as in miniapp_sync.logs (which this module does not import: it stays cheap).
_CHOICES = {"log_format": ("console", "json"), "log_level": ("debug", "info", "warning", "error")}
_SECRETS = frozenset({"secret_key", "admin_token", "viewer_token"})  # never quoted back in an error
_NUMBERS = {  # setting → (its variable, its unit)
    "max_retry_after": (MAX_RETRY_AFTER_VARIABLE, "seconds"),
    "history_days": (HISTORY_DAYS_VARIABLE, "days"),
}
_TOP_KEYS = (*_SCALARS, *_NUMBERS, "rewrites", "miniapps")


class SettingsError(UsageError):
    """A setting cannot be used: where it came from, what was expected, what was found."""


@dataclass(frozen=True)
class Settings:
    """What an operator set, resolved; each command reads what it needs from here."""

    store: str | None = None
    secret_key: str | None = None
    admin_token: str | None = None
    viewer_token: str | None = None  # the console's read-only login: sees everything, changes nothing
    public_url: str | None = None
    default_schedule: str | None = None  # serve/worker --default-schedule: 30m, 6h, 1d or cron
    history_days: float | None = None  # None: the store's default (30 days)
    log_format: str = "console"
    log_level: str = "info"
    rewrites: Mapping[str, str] = field(default_factory=dict)  # origin → origin
    config: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # ns → auth.config values
    config_flags: Mapping[str, str] = field(default_factory=dict)  # --config: every MiniApp of the command
    max_retry_after: float | None = None  # seconds a provider's Retry-After may ask for (D38); None: 300

    def with_flags(
        self,
        *,
        store: str | None = None,
        rewrite: Iterable[str] | None = None,
        config: Iterable[str] | None = None,
        admin_token: str | None = None,
        viewer_token: str | None = None,
        public_url: str | None = None,
        default_schedule: str | None = None,
        max_retry_after: float | None = None,
        log_format: str | None = None,
        log_level: str | None = None,
        environ: Mapping[str, str],
    ) -> Settings:
        """Return these settings with a command's flags on top (flags win)."""
        flags = (
            ("store", store),
            ("admin_token", admin_token),
            ("viewer_token", viewer_token),
            ("default_schedule", default_schedule),
            ("max_retry_after", max_retry_after),
        )
        changes: dict[str, Any] = {name: value for name, value in flags if value is not None}
        if public_url is not None:
            changes["public_url"] = _public_url(public_url, "--public-url")
        for name, value in (("log_format", log_format), ("log_level", log_level)):
            if value is not None:
                changes[name] = _choice(name, value, f"--{name.replace('_', '-')}")
        if rewrite:
            changes["rewrites"] = {**self.rewrites, **_rewrites(rewrite, "--rewrite")}
        if config:
            changes["config_flags"] = {**self.config_flags, **pairs(config, "--config", environ)}
        return dataclasses.replace(self, **changes)

    def config_for(self, ns: str) -> dict[str, str]:
        """Return the operator-held ``auth.config`` values of one MiniApp."""
        return {**self.config.get(ns, {}), **self.config_flags}

    def rewrite_rules(self) -> Rewrites:
        """Return the origin rewrites."""
        from miniapp_sync.network import Rewrites

        return Rewrites(dict(self.rewrites))

    def vault_environ(self) -> dict[str, str]:
        """Return the environment the credentials vault reads its key from."""
        return {KEY_VARIABLE: self.secret_key} if self.secret_key else {}


def load_settings(environ: Mapping[str, str], *, config_file: Path | None = None, cwd: Path | None = None) -> Settings:
    """Read the file (``config_file``, else $MINIAPP_SYNC_CONFIG_FILE, else ./miniapp-sync.toml) and the environment."""
    explicit = config_file or (Path(environ[CONFIG_FILE_VARIABLE]) if environ.get(CONFIG_FILE_VARIABLE) else None)
    path = explicit or (cwd or Path.cwd()) / FILE_NAME
    settings = Settings()
    if explicit is not None or path.is_file():
        settings = _from_file(path, environ)
    return _from_environment(settings, environ)


def pairs(values: Iterable[str] | None, option: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Parse ``key=value`` flags; ``key=env:NAME`` reads the environment so secrets stay off the command line."""
    out: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SettingsError(f"{option}: expected key=value, found {preview(key)}=…")
        out[key] = resolve(value, f"{option} {key}", environ)
    return out


def resolve(value: str, where: str, environ: Mapping[str, str]) -> str:
    """Return a value as given, or the variable it names as ``env:NAME`` (an error naming ``where`` when unset)."""
    if not value.startswith("env:"):
        return value
    name = value[4:]
    if name not in environ:
        raise SettingsError(
            f"{where}: the environment variable {name!r} is not set (hint: export it, or give the value)"
        )
    return environ[name]


def _number(value: Any, where: str, unit: str) -> float:
    """Return a number (0 or more) from the file (a TOML number) or a variable (its text)."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number < 1e9:
        raise SettingsError(f"{where}: expected a number of {unit} (0 or more), found {preview(value)}")
    return float(number)


def _rewrites(values: Iterable[str], where: str) -> dict[str, str]:
    from miniapp_sync.network import Rewrites

    try:
        return dict(Rewrites.parse(values).origins)
    except InstallationError as exc:
        raise SettingsError(f"{where}: {exc}") from None


def _public_url(value: str, where: str) -> str:
    """Return the URL serve is reached at, or raise naming ``where``.

    Install links, OAuth redirects and the webhook URL registered with providers are built on it:
    one that is not an http(s) URL (``javascript:…``, ``http://[::1``, a port past 65535) would be
    handed to a tenant's admin or a provider, and fail only there.
    """
    from miniapp_sync.network import is_http_url

    if not is_http_url(value):
        raise SettingsError(
            f"{where}: expected the http(s) URL serve is reached at (e.g. https://sync.example.com), "
            f"found {preview(value)}"
        )
    return value


def _choice(name: str, value: str, where: str) -> str:
    """Return a setting that takes one of a few values, lowercased, or raise naming ``where``."""
    choices = _CHOICES[name]
    if value.lower() not in choices:
        raise SettingsError(f"{where}: expected one of {', '.join(choices)}, found {preview(value)}")
    return value.lower()


def _from_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    changes: dict[str, Any] = {name: environ[variable] for name, variable in _SCALARS.items() if environ.get(variable)}
    for name, (variable, unit) in _NUMBERS.items():
        if environ.get(variable):
            changes[name] = _number(environ[variable], variable, unit)
    for name in _CHOICES:
        if name in changes:
            changes[name] = _choice(name, changes[name], _SCALARS[name])
    if "public_url" in changes:
        changes["public_url"] = _public_url(changes["public_url"], PUBLIC_URL_VARIABLE)
    if environ.get(REWRITES_VARIABLE):
        given = [p for p in re.split(r"[\s,]+", environ[REWRITES_VARIABLE]) if p]
        changes["rewrites"] = {**settings.rewrites, **_rewrites(given, REWRITES_VARIABLE)}
    config = {ns: dict(values) for ns, values in settings.config.items()}
    for variable, value in environ.items():
        if variable.startswith(CONFIG_VARIABLE):
            ns, sep, key = variable[len(CONFIG_VARIABLE) :].partition("__")
            if not (ns and sep and key):
                raise SettingsError(
                    f"{variable}: expected {CONFIG_VARIABLE}<ns>__<key>, e.g. {CONFIG_VARIABLE}salla__webhookSecret"
                )
            config.setdefault(ns, {})[key] = value
    if config:
        changes["config"] = config
    return dataclasses.replace(settings, **changes)


def _from_file(path: Path, environ: Mapping[str, str]) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the settings file ({exc.strerror})") from None
    import tomllib  # ~3 ms of imports (it compiles its patterns): only where a settings file is read

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib ends its message with "(at line L, column C)": put that where errors say where.
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", str(exc))
        where = f"{path}:{found[1]}:{found[2]}" if found else str(path)
        reason = str(exc)[: found.start()] if found else str(exc)
        raise SettingsError(f"{where}: not valid TOML: {reason}") from None
    lines = _KeyLines(path, text)
    for key in data:
        if key not in _TOP_KEYS:
            lines.unknown(key, (), _TOP_KEYS)
    values: dict[str, Any] = {}
    for name in _SCALARS:
        if name in data:
            value = data[name]
            if not isinstance(value, str) or not value:
                shown = "a value" if name in _SECRETS else preview(value)
                raise SettingsError(f"{lines.at(name)}: {name}: expected a non-empty string, found {shown}")
            values[name] = resolve(value, f"{lines.at(name)}: {name}", environ)
            if name in _CHOICES:
                values[name] = _choice(name, values[name], f"{lines.at(name)}: {name}")
            if name == "public_url":
                values[name] = _public_url(values[name], f"{lines.at(name)}: {name}")
    for name, (_, unit) in _NUMBERS.items():
        if name in data:
            values[name] = _number(data[name], f"{lines.at(name)}: {name}", unit)
    if "rewrites" in data:
        values["rewrites"] = _rewrites_table(data["rewrites"], lines)
    if "miniapps" in data:
        values["config"] = _miniapps_table(data["miniapps"], lines, environ)
    return Settings(**values)


def _rewrites_table(table: Any, lines: _KeyLines) -> dict[str, str]:
    where = lines.at("rewrites")
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise SettingsError(f'{where}: rewrites: expected a table of "FROM" = "TO" origins, found {preview(table)}')
    return _rewrites((f"{source}={target}" for source, target in table.items()), f"{where}: rewrites")


def _miniapps_table(table: Any, lines: _KeyLines, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    if not isinstance(table, dict):
        raise SettingsError(f"{lines.at('miniapps')}: miniapps: expected tables [miniapps.<ns>.config]")
    config: dict[str, dict[str, str]] = {}
    for ns, entry in table.items():
        if not isinstance(entry, dict):
            raise SettingsError(f"{lines.at(ns)}: miniapps.{ns}: expected a table with a config table")
        for key in entry:
            if key != "config":
                lines.unknown(key, ("miniapps", ns), ("config",))
        values = entry.get("config", {})
        if not isinstance(values, dict):
            raise SettingsError(f'{lines.at("config")}: miniapps.{ns}.config: expected a table of key = "value"')
        out: dict[str, str] = {}
        for key, value in values.items():
            where = f"{lines.at(key)}: miniapps.{ns}.config.{key}"
            if not isinstance(value, str):
                raise SettingsError(f"{where}: expected a string, found {type(value).__name__}")
            out[key] = resolve(value, where, environ)
        config[ns] = out
    return config


class _KeyLines:
    """Where keys sit in the file, for errors that say ``file:line`` (tomllib keeps no positions)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def at(self, key: str) -> str:
        """Return ``file:line`` of the first line that assigns or opens ``key`` (``file`` when none does)."""
        pattern = re.compile(rf"""^\s*(\[+\s*)?(["']?)[\w.-]*\b{re.escape(key)}\2\s*(=|\.|\])""")
        for number, line in enumerate(self.lines, start=1):
            if pattern.match(line):
                return f"{self.path}:{number}"
        return str(self.path)

    def unknown(self, key: str, parent: tuple[str, ...], known: Iterable[str]) -> None:
        """Raise the error of an unknown key, with a 'did you mean'."""
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        dotted = ".".join((*parent, key))
        raise SettingsError(f"{self.at(key)}: unknown setting {dotted!r} (known: {', '.join(known)}){hint}")
