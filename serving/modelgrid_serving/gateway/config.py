"""The gateway's configuration: the static YAML file, as typed models.

One file holds everything static mode needs (models and their backends, keys, limits); in
Kubernetes mode the models come from InferenceModels and the file (optional) only sets keys and
limits. Paths in the file are relative to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackendConfig(_Config):
    """One OpenAI-compatible server that serves the model."""

    url: str = Field(description="Base URL of its OpenAI API, ending in /v1.")
    model: str | None = Field(
        default=None,
        description="The name this backend knows the model by, when it differs from the served "
        "name (mlx_lm.server wants its model path). The gateway rewrites the request's model.",
    )
    pool: str = Field(default="default", description="Pool label for stats (nvidia, apple...).")
    api_key: str | None = Field(default=None, description="Sent upstream as a Bearer token.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("backend url must start with http:// or https://")
        return url.rstrip("/")


class ModelConfig(_Config):
    """A served model: its name, aliases and the backends that serve it."""

    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    backends: list[BackendConfig] = Field(min_length=1)


class KeyConfig(_Config):
    """An API key, stored as the SHA-256 of the key (``python -m modelgrid_serving.gateway
    hash-key`` prints it), never the key itself."""

    name: str = Field(min_length=1, description="Who holds the key; labels metrics and logs.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    models: list[str] | None = Field(
        default=None, description="Allowed model names or aliases; absent: every model."
    )
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class KeysFile(_Config):
    """The keys file (static mode) or the Secret's ``keys.yaml`` (Kubernetes mode)."""

    keys: list[KeyConfig] = Field(default_factory=list)


class AuthConfig(_Config):
    """API keys. Off by default, for local use."""

    enabled: bool = False
    keys_file: Path | None = Field(default=None, description="A KeysFile; reloaded on change.")
    keys: list[KeyConfig] = Field(default_factory=list, description="Keys inline.")
    secret_name: str | None = Field(
        default=None,
        description="Kubernetes mode: a Secret (in `secret_namespace`) whose data key "
        "`secret_key` holds a KeysFile; watched.",
    )
    secret_key: str = "keys.yaml"
    secret_namespace: str | None = Field(
        default=None,
        description="Namespace of the keys Secret; default: the gateway's own (its pod's).",
    )


class PeersConfig(_Config):
    """Other gateway processes that share the per-key limits with this one (see peers.py)."""

    urls: list[str] = Field(
        default_factory=list, description="Base URLs of peer gateways (static setups)."
    )
    dns: str | None = Field(
        default=None,
        pattern=r"^[^:/\s]+:[0-9]{1,5}$",
        description="HOST:PORT; every address HOST resolves to is a peer (a headless Service "
        "over the gateway pods). This process finds and skips itself.",
    )
    interval_s: float = Field(
        default=0.5, gt=0, le=60, description="How often peers' usage is read."
    )

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"peer url {url!r} must start with http:// or https://")
        return [url.rstrip("/") for url in urls]

    @property
    def enabled(self) -> bool:
        return bool(self.urls or self.dns)


class LimitsConfig(_Config):
    """Bounds that keep one client or one backend from hurting the others."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1, description="Larger: 413.")
    max_in_flight_per_backend: int = Field(
        default=256, ge=1, description="Over it on every backend of a model: 503 at once."
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest silence from a backend mid-response."
    )
    retries: int = Field(
        default=2, ge=0, description="Other backends tried after a connection failure."
    )
    health_interval_s: float = Field(
        default=2.0, ge=0, description="Static backends' /health probe period; 0: off."
    )
    peers: PeersConfig = Field(
        default_factory=PeersConfig,
        description="Gateways that share the per-key limits (replicas behind one Service).",
    )


class GatewayConfig(_Config):
    """The whole file."""

    models: list[ModelConfig] = Field(default_factory=list)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)


def load_config(path: Path | None) -> GatewayConfig:
    """Read the YAML file at ``path`` (``None``: defaults, no models).

    Raises:
        pydantic.ValidationError: the file does not match :class:`GatewayConfig`.
    """
    if path is None:
        return GatewayConfig()
    doc: Any = yaml.safe_load(Path(path).read_text()) or {}
    config = GatewayConfig.model_validate(doc)
    keys_file = config.auth.keys_file
    if keys_file is not None and not keys_file.is_absolute():
        auth = config.auth.model_copy(update={"keys_file": Path(path).parent / keys_file})
        config = config.model_copy(update={"auth": auth})
    return config


def load_keys(text: str) -> list[KeyConfig]:
    """Parse a KeysFile document."""
    return KeysFile.model_validate(yaml.safe_load(text) or {}).keys
