"""Operator settings: each source, the precedence flag > environment > file > default, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from miniapp_sync import settings as settings_module
from miniapp_sync.installations.vault import KEY_VARIABLE
from miniapp_sync.settings import FILE_NAME, Settings, SettingsError, load_settings
from miniapp_sync.store.database import ENV_VAR

SANDBOX = "http://127.0.0.1:8765"


def write(folder: Path, text: str) -> Path:
    path = folder / FILE_NAME
    path.write_text(text, encoding="utf-8")
    return path


def test_the_variable_names_are_those_the_store_and_the_vault_read() -> None:
    assert settings_module.STORE_VARIABLE == ENV_VAR
    assert settings_module.KEY_VARIABLE == KEY_VARIABLE


def test_nothing_set_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings({}, cwd=tmp_path) == Settings()


def test_every_setting_is_read_from_the_file_in_the_working_directory(tmp_path: Path) -> None:
    write(
        tmp_path,
        f"""
store = "postgresql://postgres@127.0.0.1/app"
secret_key = "env:MY_KEY"
admin_token = "token-from-file"
public_url = "https://sync.example.com"

[rewrites]
"https://api.salla.dev" = "{SANDBOX}"

[miniapps.salla.config]
webhookSecret = "env:SALLA_SECRET"
client_secret = "plain"
""",
    )
    found = load_settings({"MY_KEY": "k", "SALLA_SECRET": "s"}, cwd=tmp_path)
    assert found.store == "postgresql://postgres@127.0.0.1/app"
    assert found.secret_key == "k"
    assert found.admin_token == "token-from-file"
    assert found.public_url == "https://sync.example.com"
    assert found.rewrite_rules().apply("https://api.salla.dev/admin/v2/products") == f"{SANDBOX}/admin/v2/products"
    assert found.config_for("salla") == {"webhookSecret": "s", "client_secret": "plain"}
    assert found.config_for("zid") == {}
    assert found.vault_environ() == {KEY_VARIABLE: "k"}


def test_every_setting_is_read_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "MINIAPP_SYNC_STORE": "env.sqlite",
        "MINIAPP_SYNC_SECRET_KEY": "key",
        "MINIAPP_SYNC_ADMIN_TOKEN": "token",
        "MINIAPP_SYNC_PUBLIC_URL": "https://env.example.com",
        "MINIAPP_SYNC_REWRITES": f"https://api.salla.dev={SANDBOX}, https://accounts.salla.sa={SANDBOX}",
        "MINIAPP_SYNC_CONFIG__salla__webhookSecret": "from-env",
    }
    found = load_settings(environ, cwd=tmp_path)
    assert (found.store, found.secret_key, found.admin_token) == ("env.sqlite", "key", "token")
    assert found.public_url == "https://env.example.com"
    assert dict(found.rewrites) == {"https://api.salla.dev": SANDBOX, "https://accounts.salla.sa": SANDBOX}
    assert found.config_for("salla") == {"webhookSecret": "from-env"}


def test_a_flag_beats_the_environment_which_beats_the_file_entry_by_entry(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
store = "file.sqlite"
admin_token = "file-token"
public_url = "https://file.example.com"
[rewrites]
"https://a.example" = "http://127.0.0.1:1"
"https://b.example" = "http://127.0.0.1:1"
[miniapps.salla.config]
webhookSecret = "file"
client_secret = "file"
""",
    )
    environ = {
        "MINIAPP_SYNC_STORE": "env.sqlite",
        "MINIAPP_SYNC_ADMIN_TOKEN": "env-token",
        "MINIAPP_SYNC_REWRITES": "https://b.example=http://127.0.0.1:2",
        "MINIAPP_SYNC_CONFIG__salla__client_secret": "env",
    }
    from_sources = load_settings(environ, cwd=tmp_path)
    assert (from_sources.store, from_sources.admin_token) == ("env.sqlite", "env-token")
    assert from_sources.public_url == "https://file.example.com"  # only the file sets it
    flagged = from_sources.with_flags(
        store="flag.sqlite",
        rewrite=["https://a.example=http://127.0.0.1:3"],
        config=["webhookSecret=flag"],
        environ=environ,
    )
    assert flagged.store == "flag.sqlite"
    assert flagged.admin_token == "env-token"
    assert dict(flagged.rewrites) == {
        "https://a.example": "http://127.0.0.1:3",
        "https://b.example": "http://127.0.0.1:2",
    }
    assert flagged.config_for("salla") == {"webhookSecret": "flag", "client_secret": "env"}


def test_an_explicit_file_from_the_environment_is_read(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('store = "elsewhere.sqlite"\n')
    assert load_settings({"MINIAPP_SYNC_CONFIG_FILE": str(other)}, cwd=tmp_path).store == "elsewhere.sqlite"


def test_an_explicit_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nope\.toml: cannot read the settings file"):
        load_settings({}, config_file=tmp_path / "nope.toml", cwd=tmp_path)


def test_a_file_that_is_not_toml_is_an_error_at_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, 'store = "a.sqlite"\npublic_url = \n')
    with pytest.raises(SettingsError, match=rf"^{path}:2:14: not valid TOML: Invalid value"):
        load_settings({}, cwd=tmp_path)


def test_an_unknown_key_is_reported_at_its_line_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, 'store = "a.sqlite"\n\nadmin_tokn = "x"\n')
    with pytest.raises(SettingsError, match=rf"^{path}:3: unknown setting 'admin_tokn' .*did you mean 'admin_token'\?"):
        load_settings({}, cwd=tmp_path)


def test_an_unknown_key_in_a_miniapp_table_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, '[miniapps.salla.confg]\nwebhookSecret = "x"\n')
    with pytest.raises(
        SettingsError, match=rf"^{path}:1: unknown setting 'miniapps.salla.confg'.*did you mean 'config'"
    ):
        load_settings({}, cwd=tmp_path)


def test_a_value_of_the_wrong_type_is_reported_at_its_line_without_quoting_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path, 'store = "a.sqlite"\nadmin_token = 123456789\n')
    with pytest.raises(SettingsError, match=rf"^{path}:2: admin_token: expected a non-empty string") as caught:
        load_settings({}, cwd=tmp_path)
    assert "123456789" not in str(caught.value)


def test_a_bad_rewrite_in_the_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, '[rewrites]\n"api.salla.dev" = "127.0.0.1:8765"\n')
    with pytest.raises(SettingsError, match=rf"^{path}:1: rewrites: a rewrite is FROM=TO with two http\(s\) origins"):
        load_settings({}, cwd=tmp_path)


def test_an_env_reference_to_an_unset_variable_names_the_setting(tmp_path: Path) -> None:
    path = write(tmp_path, '[miniapps.salla.config]\nwebhookSecret = "env:NOT_SET"\n')
    with pytest.raises(SettingsError, match=rf"^{path}:2: miniapps.salla.config.webhookSecret: .*'NOT_SET' is not set"):
        load_settings({}, cwd=tmp_path)


def test_a_malformed_config_variable_says_the_expected_form(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"MINIAPP_SYNC_CONFIG__salla: expected MINIAPP_SYNC_CONFIG__<ns>__<key>"):
        load_settings({"MINIAPP_SYNC_CONFIG__salla": "x"}, cwd=tmp_path)


def test_the_retry_after_cap_comes_from_the_file_the_environment_or_a_flag(tmp_path: Path) -> None:
    (tmp_path / "miniapp-sync.toml").write_text("max_retry_after = 60\n")
    assert load_settings({}, cwd=tmp_path).max_retry_after == 60.0
    from_env = load_settings({"MINIAPP_SYNC_MAX_RETRY_AFTER": "90"}, cwd=tmp_path)
    assert from_env.max_retry_after == 90.0
    assert from_env.with_flags(max_retry_after=5, environ={}).max_retry_after == 5


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_a_retry_after_cap_that_is_not_seconds_is_an_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"MINIAPP_SYNC_MAX_RETRY_AFTER: expected a number of seconds .*{value}"):
        load_settings({"MINIAPP_SYNC_MAX_RETRY_AFTER": value}, cwd=tmp_path)
    (tmp_path / "miniapp-sync.toml").write_text('\nmax_retry_after = "a day"\n')
    with pytest.raises(SettingsError, match=r"miniapp-sync.toml:2: max_retry_after: expected a number of seconds"):
        load_settings({}, cwd=tmp_path)


def test_the_history_retention_comes_from_the_file_unless_the_environment_says_otherwise(tmp_path: Path) -> None:
    write(tmp_path, "history_days = 7\n")
    assert load_settings({}, cwd=tmp_path).history_days == 7.0
    assert load_settings({"MINIAPP_SYNC_HISTORY_DAYS": "0"}, cwd=tmp_path).history_days == 0.0


@pytest.mark.parametrize("value", ["-1", '"a week"', "true"])
def test_a_history_retention_that_is_not_days_is_reported_at_its_line(tmp_path: Path, value: str) -> None:
    write(tmp_path, f'store = "s.sqlite"\nhistory_days = {value}\n')
    with pytest.raises(SettingsError, match=rf"{FILE_NAME}:2: history_days: expected a number of days"):
        load_settings({}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="MINIAPP_SYNC_HISTORY_DAYS: expected a number of days"):
        load_settings({"MINIAPP_SYNC_HISTORY_DAYS": "soon"}, cwd=tmp_path / "elsewhere")


def test_log_format_and_level_come_from_flag_then_environment_then_file(tmp_path: Path) -> None:
    assert (Settings().log_format, Settings().log_level) == ("console", "info")
    write(tmp_path, 'log_format = "json"\nlog_level = "warning"\n')
    from_file = load_settings({}, cwd=tmp_path)
    assert (from_file.log_format, from_file.log_level) == ("json", "warning")
    from_env = load_settings({"MINIAPP_SYNC_LOG_LEVEL": "DEBUG"}, cwd=tmp_path)
    assert (from_env.log_format, from_env.log_level) == ("json", "debug")
    flagged = from_env.with_flags(log_format="console", environ={})
    assert (flagged.log_format, flagged.log_level) == ("console", "debug")


def test_a_log_level_that_is_not_one_of_the_levels_is_reported_where_it_was_set(tmp_path: Path) -> None:
    path = write(tmp_path, 'store = "a.sqlite"\nlog_level = "loud"\n')
    with pytest.raises(SettingsError, match=rf"^{path}:2: log_level: expected one of debug, info, warning, error"):
        load_settings({}, cwd=tmp_path)
    with pytest.raises(SettingsError, match=r"^MINIAPP_SYNC_LOG_FORMAT: expected one of console, json"):
        load_settings({"MINIAPP_SYNC_LOG_FORMAT": "xml"}, cwd=tmp_path / "elsewhere")


def test_the_viewer_token_is_read_like_the_admin_token(tmp_path: Path) -> None:
    assert load_settings({"MINIAPP_SYNC_VIEWER_TOKEN": "look"}, cwd=tmp_path).viewer_token == "look"
    write(tmp_path, 'viewer_token = "env:VIEWER"\n')
    from_file = load_settings({"VIEWER": "from-env-name"}, cwd=tmp_path)
    assert from_file.viewer_token == "from-env-name"
    assert from_file.with_flags(viewer_token="flag", environ={}).viewer_token == "flag"
    write(tmp_path, "viewer_token = 42\n")
    with pytest.raises(SettingsError, match=r"viewer_token: expected a non-empty string, found a value$"):
        load_settings({}, cwd=tmp_path)


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "sync.example.com", "http://[::1", "https://sync.example.com:99999"]
)
def test_a_public_url_that_is_not_an_http_url_is_refused_from_every_source(tmp_path: Path, url: str) -> None:
    # Install links, OAuth redirects and the registered webhook URL are built on it: before, any
    # text was taken, and the link handed to a tenant's admin was e.g. "javascript:alert(1)/miniapps/…".
    expected = "expected the http(s) URL serve is reached at (e.g. https://sync.example.com), found "
    path = write(tmp_path, f'store = "a.sqlite"\npublic_url = "{url}"\n')
    with pytest.raises(SettingsError, match=rf"^{path}:2: public_url: {re.escape(expected)}"):
        load_settings({}, cwd=tmp_path)
    with pytest.raises(SettingsError, match=rf"^MINIAPP_SYNC_PUBLIC_URL: {re.escape(expected)}"):
        load_settings({"MINIAPP_SYNC_PUBLIC_URL": url}, cwd=tmp_path / "none")
    with pytest.raises(SettingsError, match=rf"^--public-url: {re.escape(expected)}"):
        Settings().with_flags(public_url=url, environ={})
    assert Settings().with_flags(public_url="https://sync.example.com/base", environ={}).public_url == (
        "https://sync.example.com/base"
    )
