from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from proxy.errors import ConfigError
from proxy.settings import Settings, load_settings

ROUTE = {"model_name": "m", "model": "openai/m", "api_base": "http://127.0.0.1:9/v1"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_yaml_file_is_read(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "port: 9100\nauth: {enabled: false}\nmodel_list:\n"
        "  - {model_name: a, model: openai/x, timeout: 5, num_retries: 2}\n",
    )
    settings = load_settings(config_file=config)
    assert settings.port == 9100
    assert settings.model_list[0].timeout == 5
    assert settings.model_list[0].num_retries == 2
    assert settings.aliases == ("a",)


def test_env_overrides_file_and_flags_override_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path, "port: 9100\nhost: 0.0.0.0\nauth: {enabled: false}\n")
    monkeypatch.setenv("VETCACHE_PORT", "9200")
    monkeypatch.setenv("VETCACHE_AUTH__DEFAULT_TENANT", "acme")
    settings = load_settings(config_file=config)
    assert (settings.port, settings.host) == (9200, "0.0.0.0")
    assert settings.auth.enabled is False  # nested env merged into the file's section
    assert settings.auth.default_tenant == "acme"
    assert load_settings(config_file=config, port=9300).port == 9300


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VETCACHE_CONFIG_FILE", str(write(tmp_path, "auth: {enabled: false}\n")))
    assert load_settings().auth.enabled is False


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("auth: {enabled: false}\nport: 0\n", "port: Input should be greater than or equal to 1"),
        (
            "model_list: [{model_name: a, model: gpt}]\nauth: {enabled: false}\n",
            "model_list.0.model",
        ),
        (
            "model_list: [{model_name: a, model: openai/x, fallbacks: [b]}]\n"
            "auth: {enabled: false}\n",
            "model_list.0.fallbacks: unknown model alias 'b'",
        ),
        ("model_list: [\n", "config_file: invalid YAML at line 2"),
        (
            "- 1\n- 2\n",
            "the top level must be a mapping of settings (`key: value` lines), not a list",
        ),
        (
            "just words\n",
            "the top level must be a mapping of settings (`key: value` lines), not a string",
        ),
        ("{}\n", "auth.api_keys: auth is enabled but no keys are configured"),
        ("auth: {enabled: false}\nbogus: 1\n", "bogus: Extra inputs are not permitted"),
        (
            "auth: {api_keys: [{tenant: t, key_sha256: abc}]}\n",
            "auth.api_keys.0.key_sha256: must be 64 hex digits",
        ),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, yaml_text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=write(tmp_path, yaml_text))
    assert expected in str(caught.value)
    assert "dictionary update" not in str(caught.value)  # no Python error text leaks out


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config_file: no such file"):
        load_settings(config_file=tmp_path / "nope.yaml")


def test_api_key_is_read_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-secret-value")
    settings = Settings(
        auth={"enabled": False}, model_list=[{**ROUTE, "api_key_env": "MY_PROVIDER_KEY"}]
    )
    key = settings.model_list[0].api_key
    assert key is not None and key.get_secret_value() == "sk-secret-value"
    dumped = settings.model_dump_json()
    assert "sk-secret-value" not in dumped and "MY_PROVIDER_KEY" in dumped


def test_missing_api_key_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="environment variable ABSENT_KEY is not set"):
        load_settings(auth={"enabled": False}, model_list=[{**ROUTE, "api_key_env": "ABSENT_KEY"}])


def test_settings_are_frozen() -> None:
    settings = Settings(auth={"enabled": False})
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_every_setting_has_an_env_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VETCACHE_AUTH__ENABLED", "false")
    monkeypatch.setenv("VETCACHE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("VETCACHE_ADMIN_KEY", "admin-secret")
    monkeypatch.setenv("VETCACHE_MODEL_LIST", '[{"model_name": "e", "model": "openai/e"}]')
    settings = load_settings()
    assert settings.max_body_bytes == 2048
    assert settings.admin_key is not None
    assert settings.admin_key.get_secret_value() == "admin-secret"
    assert settings.aliases == ("e",)
