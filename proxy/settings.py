"""All of vetcache's settings: one frozen model, read once at start.

Sources, highest priority first: keyword arguments (the CLI's flags, tests), environment
variables with prefix ``VETCACHE_`` (nested fields joined with ``__``, e.g.
``VETCACHE_AUTH__ENABLED=false``), the YAML file named by ``config_file`` (``--config`` on
the CLI, or ``VETCACHE_CONFIG_FILE``), then the defaults below.

Settings are read here, once: the rest of the code receives them (``Depends``, arguments),
not variable names. Provider keys named by variable (``model_list[].api_key_env``,
``audit.llm.api_key_env``) are resolved here, by ``key_from_env``. The process environment is
also read where a library defines the variable rather than vetcache's settings: the
Prometheus multiprocess directory (``proxy.exposition``), where ONNX exports are kept
(``cache.onnx_embedder``), and litellm's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from audit.settings import AuditSettings
from cache.settings import CacheSettings
from proxy.errors import ConfigError
from proxy.tracing import TracingSettings

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


def key_from_env(variable: str, field: str) -> SecretStr:
    """The secret in environment variable ``variable`` (named by the setting ``field``);
    a ``ValueError`` naming both when it is unset or empty."""
    value = os.environ.get(variable)
    if not value:
        raise ValueError(f"{field}: environment variable {variable} is not set")
    return SecretStr(value)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRoute(_Frozen):
    """One upstream deployment behind a model alias (several may share an alias)."""

    model_name: str
    """The alias clients send as ``model``."""
    model: str
    """The litellm model string, ``provider/model`` (e.g. ``openai/gpt-4o-mini``)."""
    api_base: AnyHttpUrl | None = None
    """Base URL of the provider's API; omit for the provider's default."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the provider API key."""
    api_key: SecretStr | None = Field(default=None, exclude=True)
    """Resolved from ``api_key_env`` at load; never written in config files."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds before an upstream call is abandoned (the client then gets 504)."""
    num_retries: int = Field(default=0, ge=0, le=10)
    """Retries of a failed upstream call (429, 5xx, timeouts) before giving up."""
    fallbacks: tuple[str, ...] = ()
    """Aliases tried in order when this alias fails after its retries."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Extra litellm parameters for this deployment (``api_version``, ``organization``...)."""
    wire: Literal["auto", "openai", "litellm"] = "auto"
    """How the gateway calls this deployment: ``openai``, its own direct client (the
    deployment speaks OpenAI's wire format); ``litellm``, litellm's Router (translation to
    other providers); ``auto``, the direct client when litellm's provider resolution names a
    provider that speaks OpenAI's format and ``params`` hold nothing litellm-specific
    (docs/architecture.md, "Two lanes")."""
    weight: float = Field(default=1.0, gt=0)
    """This deployment's share of its alias's traffic, relative to the alias's others."""
    connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds to open a connection to this deployment (direct lane)."""
    stream_idle_timeout: float | None = Field(default=None, gt=0)
    """Seconds a stream may wait for its next bytes before it is abandoned (direct lane);
    default ``timeout``. A stream has no total timeout."""
    cooldown_s: float = Field(default=0.0, ge=0)
    """Seconds this deployment is skipped after a failure worth retrying (429, 5xx,
    timeout, unreachable) while its alias has another deployment (direct lane); 0: off."""

    @field_validator("model_name")
    @classmethod
    def _alias_shape(cls, value: str) -> str:
        if not _ALIAS.match(value):
            raise ValueError("must be 1-128 characters of letters, digits and ._:/@-")
        return value

    @field_validator("model")
    @classmethod
    def _has_provider(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError("must be 'provider/model', e.g. 'openai/gpt-4o-mini'")
        return value

    @model_validator(mode="after")
    def _resolve_key(self) -> ModelRoute:
        if self.api_key_env is not None and self.api_key is None:
            object.__setattr__(self, "api_key", key_from_env(self.api_key_env, "api_key_env"))
        return self


class ApiKey(_Frozen):
    """A gateway API key and the tenant it belongs to."""

    tenant: str = Field(min_length=1, max_length=128)
    """Tenant name: the cache partition and the label on this key's traffic."""
    key_sha256: str | None = None
    """Hex SHA-256 of the key (``vetcache hash-key`` prints it). Preferred in files."""
    key: SecretStr | None = None
    """The key itself, for keys injected through the environment; hashed at start."""

    @field_validator("key_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.match(value.lower()):
            raise ValueError("must be 64 hex digits (the SHA-256 of the key)")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _one_form(self) -> ApiKey:
        if (self.key_sha256 is None) == (self.key is None):
            raise ValueError("give exactly one of key_sha256 or key")
        return self


class AuthSettings(_Frozen):
    """Who may call the gateway."""

    enabled: bool = True
    """Require ``Authorization: Bearer <key>``; off only for local development."""
    api_keys: tuple[ApiKey, ...] = ()
    """Client keys, each mapped to a tenant."""
    default_tenant: str = "default"
    """Tenant of every request when auth is off."""

    @property
    def tenants(self) -> frozenset[str]:
        """Every tenant a request can belong to."""
        if not self.enabled:
            return frozenset({self.default_tenant})
        return frozenset(key.tenant for key in self.api_keys)


class MetricsSettings(_Frozen):
    """``metrics:`` in the config."""

    enabled: bool = True
    """Serve ``GET /metrics``."""
    max_namespaces: int = Field(default=200, ge=1)
    """Distinct namespace labels kept, split evenly among the tenants the keys name: a
    tenant's namespaces past its share are counted as ``_other`` (namespaces an operator
    names, by a threshold or the autopilot, are always labelled)."""
    refresh_s: float = Field(default=15.0, gt=0)
    """How often the shared-state gauges (FP rate, queue, thresholds, entries) refresh."""
    fp_window_s: int | None = Field(default=None, ge=60)
    """Window of ``vetcache_false_positive_rate``; default ``audit.window_s``."""
    view_window_s: float = Field(default=300.0, gt=0)
    """Window of the convenience gauges ``vetcache_hit_ratio`` and
    ``vetcache_request_duration_p99_seconds`` (views of the request counters)."""


class Settings(BaseSettings):
    """The whole configuration of a gateway process. Frozen: read once, never changed."""

    model_config = SettingsConfigDict(
        env_prefix="VETCACHE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    config_file: Path | None = None
    """YAML file with any of these settings (``--config``)."""
    host: str = "127.0.0.1"
    """Interface ``vetcache serve`` binds."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port ``vetcache serve`` listens on."""
    workers: int = Field(default=1, ge=1, le=64)
    """Gateway worker processes."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level; prompt and answer text are never logged at info or above."""
    log_format: Literal["json", "text"] = "json"
    """``json``: one object per line (request id, outcome, timings on access lines)."""
    access_log: bool = True
    """One log line per request (method, path, status, duration, request id; never bodies)."""
    shutdown_timeout: float = Field(default=30.0, ge=0)
    """Seconds in-flight requests get to finish after SIGTERM."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413."""
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)
    """Largest request line and headers accepted; the server (uvicorn's h11) answers larger
    ones with a plain-text 400 and closes the connection, before the app sees them."""
    keep_alive_s: int = Field(default=30, ge=1)
    """Seconds an idle client connection is kept open. Longer than HTTP clients keep idle
    connections (httpx, under the openai SDK: 5 s), so a client never reuses a connection
    the server is closing at that moment (uvicorn's 5 s default raced theirs: a read error)."""
    api_docs: bool = True
    """Serve the API reference without a key: ``/docs``, ``/redoc`` and ``/openapi.json``.
    Off in the production examples (``deploy/``): it tells anyone every route and setting."""
    model_list: tuple[ModelRoute, ...] = ()
    """Upstream deployments, by alias."""
    auth: AuthSettings = AuthSettings()
    """Client authentication."""
    admin_key: SecretStr | None = None
    """Key for the ``/admin`` routes (``VETCACHE_ADMIN_KEY``); hashed at start."""
    admin_key_sha256: str | None = None
    """Hex SHA-256 of the admin key, the form to put in files."""
    redis_url: str | None = None
    """Redis with the Query Engine for the cache (``VETCACHE_REDIS_URL``); unset means the
    in-process store."""
    redis_cluster: bool = False
    """``redis_url`` names a node of an OSS Redis Cluster (``VETCACHE_REDIS_CLUSTER``): one
    search index per primary, each lookup sent to the shard that owns its scope."""
    cache: CacheSettings = CacheSettings()
    """How the semantic cache matches and admits."""
    audit: AuditSettings = AuditSettings()
    """How served hits are sampled, judged and acted upon."""
    metrics: MetricsSettings = MetricsSettings()
    """Prometheus metrics at ``/metrics``."""
    tracing: TracingSettings = TracingSettings()
    """OpenTelemetry traces (off by default)."""
    audit_sample_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """Shorthand for ``audit.sample_rate`` (``VETCACHE_AUDIT_SAMPLE_RATE``)."""
    audit_judge: Literal["contrast", "llm", "cross-encoder"] | None = None
    """Shorthand for ``audit.judge`` (``VETCACHE_AUDIT_JUDGE``)."""

    @field_validator("config_file")
    @classmethod
    def _config_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("admin_key_sha256")
    @classmethod
    def _admin_hex(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.match(value.lower()):
            raise ValueError("must be 64 hex digits (the SHA-256 of the key)")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _fallbacks_known(self) -> Settings:
        aliases = {route.model_name for route in self.model_list}
        for index, route in enumerate(self.model_list):
            for fallback in route.fallbacks:
                if fallback not in aliases:
                    raise ValueError(
                        f"model_list.{index}.fallbacks: unknown model alias {fallback!r}"
                    )
        self._apply_audit_shorthands()
        if self.auth.enabled and not self.auth.api_keys:
            raise ValueError(
                "auth.api_keys: auth is enabled but no keys are configured "
                "(add keys, or set auth.enabled: false for local use)"
            )
        policies = [self.cache.admission, *self.cache.namespace_admission.values()]
        if "audited" in policies and not self.audit.enabled:
            raise ValueError(
                "cache.admission: the audited policy needs audit.enabled (nothing would ever "
                "release a new entry)"
            )
        return self

    def _apply_audit_shorthands(self) -> None:
        update: dict[str, Any] = {}
        if self.audit_sample_rate is not None:
            update["sample_rate"] = self.audit_sample_rate
        if self.audit_judge is not None:
            update["judge"] = self.audit_judge
        llm = self.audit.llm
        if llm.api_key_env and llm.api_key is None:
            key = key_from_env(llm.api_key_env, "audit.llm.api_key_env")
            update["llm"] = llm.model_copy(update={"api_key": key})
        if update:
            object.__setattr__(self, "audit", self.audit.model_copy(update=update))

    @property
    def aliases(self) -> tuple[str, ...]:
        """Model aliases in config order, without repeats."""
        return tuple(dict.fromkeys(route.model_name for route in self.model_list))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(init_settings, InitSettingsSource)
        config_file = init_settings.init_kwargs.get("config_file") or env_settings().get(
            "config_file"
        )
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file and Path(config_file).is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


YAML_KINDS = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true/false",
}
"""How a YAML document that is no mapping is named in the error."""


def load_settings(**overrides: Any) -> Settings:
    """Build ``Settings`` from all sources, turning validation errors into ``ConfigError``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigError(f"config_file: invalid YAML{where}: {exc.problem}") from None
    except OSError as exc:
        raise ConfigError(f"config_file: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, TypeError, yaml.YAMLError):  # the YAML is no mapping of settings
        config_file = given.get("config_file") or os.environ.get("VETCACHE_CONFIG_FILE")
        raise ConfigError(f"config_file: {_not_a_mapping(config_file)}") from None


def _not_a_mapping(config_file: Any) -> str:
    """What is wrong with a config file whose top level is not a mapping: a list or a bare
    value is said as such, not as the Python error reading it gave. Read again only on this
    failure."""
    try:
        data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, TypeError, yaml.YAMLError):
        data = None
    if data is None or isinstance(data, dict):
        return "must be a YAML mapping of settings"
    kind = YAML_KINDS.get(type(data), f"a {type(data).__name__}")
    return (
        f"{config_file}: the top level must be a mapping of settings (`key: value` lines), "
        f"not {kind}"
    )


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "\n".join(lines)


@contextmanager
def worker_environment(settings: Settings) -> Iterator[None]:
    """Export the settings given on the command line so worker processes that rebuild
    ``Settings`` from the environment get the same ones; restored on exit."""
    exported = {
        "VETCACHE_CONFIG_FILE": str(settings.config_file) if settings.config_file else None,
        "VETCACHE_HOST": settings.host,
        "VETCACHE_PORT": str(settings.port),
    }
    saved = {name: os.environ.get(name) for name in exported}
    try:
        for name, value in exported.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
