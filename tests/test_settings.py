"""Settings: defaults, alertd.yaml problems at their lines, environment overrides (R6.8)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alertd.db.engine import async_url
from alertd.errors import SettingsInvalid
from alertd.settings import bundled_rules_dir, load_settings


def test_no_file_means_built_in_defaults() -> None:
    """With nothing configured: SQLite in the working directory, bundled rules, SMTP on loopback."""
    settings = load_settings(None, environ={})
    assert settings.database.url == "sqlite:///alertd.db"
    assert settings.database.upgrades_itself
    assert settings.rules.dir == bundled_rules_dir()
    assert settings.rules.reopen_window == timedelta(minutes=30)
    assert [s.listen for s in settings.smtp] == ["127.0.0.1:2525"]


def test_environment_overrides_database_and_rules(tmp_path: Path) -> None:
    """ALERTD_DATABASE_URL and ALERTD_RULES_DIR win over the file and the defaults."""
    path = tmp_path / "alertd.yaml"
    path.write_text("database:\n  url: sqlite:///from-file.db\n")
    settings = load_settings(path, environ={
        "ALERTD_DATABASE_URL": "postgresql://alertd@db.example.net/alertd",
        "ALERTD_RULES_DIR": "/etc/alertd/rules",
    })
    assert settings.database.url == "postgresql://alertd@db.example.net/alertd"
    assert not settings.database.upgrades_itself
    assert settings.rules.dir == Path("/etc/alertd/rules")


def test_the_config_path_may_come_from_the_environment(tmp_path: Path) -> None:
    """ALERTD_CONFIG names the file when --config is not given."""
    path = tmp_path / "alertd.yaml"
    path.write_text("rules:\n  dir: rules\n  reopen_window: 45m\n")
    settings = load_settings(None, environ={"ALERTD_CONFIG": str(path)})
    assert settings.rules.reopen_window == timedelta(minutes=45)
    assert settings.rules.dir == tmp_path / "rules"


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    """Unknown keys, bad durations and an open relay are all named, each at its line."""
    path = tmp_path / "alertd.yaml"
    path.write_text(
        "database:\n"
        "  url: sqlite:///x.db\n"
        "  pool: 5\n"
        "rules:\n"
        "  reopen_window: soon\n"
        "smtp:\n"
        "  - name: public\n"
        "    listen: 0.0.0.0:25\n"
    )
    with pytest.raises(SettingsInvalid) as raised:
        load_settings(path, environ={})
    assert [p.render().replace(str(path), "alertd.yaml") for p in raised.value.problems] == [
        "alertd.yaml:3: database.pool: unknown key 'pool'",
        "alertd.yaml:5: rules.reopen_window: not a duration: 'soon' (write e.g. 30s, 30m, 1h)",
        "alertd.yaml:7: smtp[0]: listener 'public' on 0.0.0.0:25 needs a recipients list "
        "(only a loopback listener may accept any recipient)",
    ]


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    """A broken settings file is a configuration error with file and line."""
    path = tmp_path / "alertd.yaml"
    path.write_text("database:\n  url: [oops\n")
    with pytest.raises(SettingsInvalid, match=r"alertd.yaml:3: invalid YAML"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///var/lib/alertd/alertd.db", "sqlite+aiosqlite:///var/lib/alertd/alertd.db"),
        ("postgresql://u:p@db/alertd", "postgresql+asyncpg://u:p@db/alertd"),
        ("postgres://u@db/alertd", "postgresql+asyncpg://u@db/alertd"),
    ],
)
def test_plain_urls_get_the_async_driver(given: str, driver: str) -> None:
    """Admins write plain SQLAlchemy URLs; alertd picks aiosqlite or asyncpg."""
    assert async_url(given) == driver
