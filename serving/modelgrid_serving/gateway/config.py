"""The gateway's configuration: the static YAML file, as typed models.

One file holds everything static mode needs (models and their backends, keys, limits); in
Kubernetes mode the models come from InferenceModels and the file (optional) only sets keys and
limits. Paths in the file are relative to the file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ..protocol.capabilities import Capability

_Model = TypeVar("_Model", bound=BaseModel)

Count = Annotated[int, Field(ge=1)]
"""A count or a size the file may set: at least one (zero would refuse everything; a limit that
is off is left out, not set to zero)."""
Seconds = Annotated[float, Field(gt=0)]
"""A duration the file may set: more than zero (zero would time out at once)."""


class ConfigError(ValueError):
    """A config or keys file that cannot be used. Its message names the fields and the rule,
    never the values: a key pasted where its hash belongs must not reach a log line."""


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
    capabilities: list[Capability] | None = Field(
        default=None,
        description="What this backend serves (tools, tool_choice, structured_output, logprobs, "
        "n, best_of, reasoning, embeddings, prompt_arrays, echo, min_tokens): a request that needs "
        "something it lacks goes to another backend of the model, or is refused (400) when none "
        "has it. Absent: everything (its own errors answer).",
    )

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
    max_model_len: Count | None = Field(
        default=None,
        description="The model's context length in tokens, when known: a larger max_tokens is "
        "refused by the gateway (400) instead of by the engine.",
    )


class KeyConfig(_Config):
    """An API key, stored as the SHA-256 of the key (``python -m modelgrid_serving.gateway
    hash-key`` prints it), never the key itself."""

    name: str = Field(min_length=1, description="Who holds the key; labels metrics and logs.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    models: list[str] | None = Field(
        default=None,
        description="Allowed model names or aliases. With `namespaces`, the key may use what "
        "either allows; both absent: every model.",
    )
    namespaces: list[str] | None = Field(
        default=None,
        description="Allowed namespaces: the key may use the InferenceModels of these "
        "namespaces (and only their backends, where a name is shared across namespaces).",
    )
    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    max_concurrent_requests: Count | None = Field(
        default=None,
        description="Requests of this key in flight at once, per gateway process; absent: "
        "`limits.max_concurrent_per_key`.",
    )
    scopes: list[Literal["admin"]] = Field(
        default_factory=list,
        description="Powers beyond using models. `admin`: load and unload models through "
        "`/v1/admin/models` (and gRPC `ModelHosting`). Never granted unless listed here.",
    )
    pool_pinning: bool = Field(
        default=False,
        description="This key may pin a request to one pool with the `x-modelgrid-pool` header "
        "(as `routing.allow_pool_pinning` allows everyone).",
    )


def check_unique_keys(keys: list[KeyConfig]) -> list[KeyConfig]:
    """Refuse two keys with one name (they would share one allowlist cache and one set of
    buckets) or one hash (only one of them could ever be matched).

    Raises:
        ValueError: naming the duplicated names (hashes are not shown).
    """
    names = [n for n, count in Counter(k.name for k in keys).items() if count > 1]
    if names:
        raise ValueError(f"key names must be unique; more than one key is named {names}")
    hashes = Counter(k.sha256 for k in keys)
    shared = sorted({k.name for k in keys if hashes[k.sha256] > 1})
    if shared:
        raise ValueError(f"keys {shared} have the same sha256: one key, one entry")
    return keys


class KeysFile(_Config):
    """The keys file (static mode) or the Secret's ``keys.yaml`` (Kubernetes mode)."""

    keys: list[KeyConfig] = Field(default_factory=list)

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[KeyConfig]) -> list[KeyConfig]:
        return check_unique_keys(keys)


class AuthConfig(_Config):
    """API keys. Off by default, for local use."""

    enabled: bool = False
    anonymous: bool = Field(
        default=False,
        description="With auth on, a request without a known key is served (with no scope, no "
        "allowlist, no limits: OpenAI clients send some key whatever the server wants); a known "
        "key still names its holder and its scopes. "
        "`modelgrid up --admin` uses it: anyone on the machine may use the models, only the "
        "holder of the admin key may load them.",
    )
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

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[KeyConfig]) -> list[KeyConfig]:
        return check_unique_keys(keys)


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
    interval_s: Seconds = Field(default=0.5, le=60, description="How often peers' usage is read.")

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

    max_body_bytes: Count = Field(default=4 * 1024 * 1024, description="Larger: 413.")
    max_in_flight_per_backend: Count = Field(
        default=256, description="Over it on every backend of a model: 503 at once."
    )
    max_concurrent_per_key: Count = Field(
        default=64,
        description="Requests one API key may have in flight at once, per gateway process "
        "(429 above); a key's `max_concurrent_requests` overrides it. Not applied with auth off.",
    )
    reserve_completion_tokens: Count = Field(
        default=512,
        description="Tokens per-minute limits reserve for the answer of a request that sets no "
        "max_tokens (settled to the real usage when it ends).",
    )
    max_n: Count = Field(default=16, description="Largest `n` (choices per request); 400 above.")
    max_prompts: Count = Field(
        default=64, description="Most prompts in one completions request; 400 above."
    )
    body_timeout_s: Seconds = Field(
        default=30.0, description="A request body must arrive whole within this (408)."
    )
    min_body_rate_bytes_s: float = Field(
        default=1024.0,
        ge=0,
        description="A request body arriving slower than this on average, from its fifth "
        "second on, is cut off (408); 0: off. Read when the server starts.",
    )
    connect_timeout_s: Seconds = Field(default=5.0)
    read_timeout_s: Seconds = Field(
        default=600.0, description="Longest silence from a backend mid-response."
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


class MetricsConfig(_Config):
    """Where Prometheus reads the gateway's metrics: a port of their own, never the API's."""

    port: int = Field(
        default=9090,
        ge=0,
        le=65535,
        description="Port of GET /metrics (on the API's host); 0: off. `--metrics-port` "
        "overrides it. Read when the server starts.",
    )


class AdminConfig(_Config):
    """The admin API: keys of scope `admin` load and unload models (``/v1/admin/models``).
    Off unless enabled, and only with auth on: it is the most powerful surface of the gateway."""

    enabled: bool = False
    namespace: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Kubernetes mode: the one namespace where the admin API creates and deletes "
        "InferenceModels; default: the gateway's own (its pod's).",
    )
    drain_timeout_s: Seconds = Field(
        default=120.0,
        le=3600,
        description="An unload waits this long at most for the requests in flight on the model "
        "to finish (new ones get 404 at once) before it removes the model.",
    )
    accelerator: Literal["nvidia", "apple", "cpu"] = Field(
        default="nvidia",
        description="The one pool's accelerator of a load that names neither `accelerator` nor "
        "`pools`.",
    )
    max_models: Count = Field(
        default=16,
        le=1000,
        description="Most models the admin API keeps at once (its own, not others'); more: 409.",
    )
    grpc_listen: str | None = Field(
        default=None,
        pattern=r"^[^\s]+:[0-9]{1,5}$",
        description="HOST:PORT of the gRPC `ModelHosting` service (CorpGrid's `LoadModel`, on "
        "this admin API; e.g. `0.0.0.0:50051`); absent: none. Plain gRPC: put TLS in front.",
    )
    control_url: str | None = Field(
        default=None,
        pattern=r"^http://127\.0\.0\.1:[0-9]{1,5}$",
        description="`modelgrid up --admin` sets it: the running process's control endpoint "
        "(loopback), which deploys what is loaded next to its first model.",
    )
    control_token_file: Path | None = Field(
        default=None, description="The file holding the control endpoint's bearer token."
    )


class RoutingConfig(_Config):
    """How a request finds its backend, beyond its model's name."""

    allow_pool_pinning: bool = Field(
        default=False,
        description="Honour the `x-modelgrid-pool: <pool>` request header from every caller: "
        "the request goes to that pool of its model only (404 for a pool the model lacks, 503 "
        "while it has no ready replica). Off: only keys with `pool_pinning` may pin; others "
        "get 403. `modelgrid up` turns it on.",
    )


ORIGIN = r"^(\*|https?://(\[[0-9A-Fa-f:.]+\]|[^/\s*:\[\]]+)(:([0-9]{1,5}|\*))?)$"
"""An allowed origin: ``scheme://host``, with ``:port`` or ``:*`` (any port, the default one
included), or ``*`` (any origin)."""
EXPOSED_HEADERS = [
    "x-request-id",
    "retry-after",
    *(f"x-ratelimit-{what}-{kind}" for kind in ("requests", "tokens") for what in
      ("limit", "remaining", "reset")),
]  # fmt: skip
"""Response headers a browser page may read besides the safelisted ones: what the OpenAI SDK
reads to retry (``retry-after``) and to report limits."""


class CORSConfig(_Config):
    """Which web pages of other origins may call the gateway from a browser (CORS). No allowed
    origin (the default): the gateway answers no preflight and sends no CORS headers."""

    allow_origins: list[Annotated[str, StringConstraints(pattern=ORIGIN)]] = Field(
        default_factory=list,
        description="Origins whose pages may call the API: `https://app.example.com`, "
        "`http://localhost:*` (any port), `*` (any origin). Empty: none.",
    )
    allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "POST", "OPTIONS"],
        description="Methods a preflight allows.",
    )
    allow_headers: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Request headers a preflight allows; `*`: those the browser asks for "
        "(Authorization included).",
    )
    expose_headers: list[str] = Field(
        default_factory=lambda: list(EXPOSED_HEADERS),
        description="Response headers pages may read besides the safelisted ones.",
    )
    max_age_s: int = Field(
        default=600, ge=0, le=86400, description="How long a browser may cache a preflight."
    )
    allow_credentials: bool = Field(
        default=False,
        description="Let pages send cookies and HTTP authentication the browser holds "
        "(Access-Control-Allow-Credentials). API keys travel in a header the page sets and "
        "need no credentials; never with the origin `*`.",
    )

    @model_validator(mode="after")
    def _no_credentials_for_everyone(self) -> CORSConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "allow_credentials cannot be true with the origin '*': any site could then "
                "act with its visitors' credentials"
            )
        return self


class GatewayConfig(_Config):
    """The whole file."""

    models: list[ModelConfig] = Field(default_factory=list)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    cors: CORSConfig = Field(default_factory=CORSConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)

    @model_validator(mode="after")
    def _admin_needs_auth(self) -> GatewayConfig:
        if self.admin.enabled and not self.auth.enabled:
            raise ValueError(
                "admin.enabled needs auth.enabled: only a key with scope admin may load models"
            )
        return self


def load_config(path: Path | None) -> GatewayConfig:
    """Read the YAML file at ``path`` (``None``: defaults, no models).

    Raises:
        ConfigError: the file is not YAML or does not match :class:`GatewayConfig`.
    """
    if path is None:
        return GatewayConfig()
    config = _validate(GatewayConfig, Path(path).read_text())
    keys_file = config.auth.keys_file
    if keys_file is not None and not keys_file.is_absolute():
        auth = config.auth.model_copy(update={"keys_file": Path(path).parent / keys_file})
        config = config.model_copy(update={"auth": auth})
    return config


def load_keys(text: str) -> list[KeyConfig]:
    """Parse a KeysFile document.

    Raises:
        ConfigError: not YAML, or not a :class:`KeysFile` (duplicate names included).
    """
    return _validate(KeysFile, text).keys


def _validate(model: type[_Model], text: str) -> _Model:
    """``text`` (YAML) as ``model``, with errors that name fields and rules, never values:
    pydantic's and YAML's own messages quote the input (a YAML error, its whole line)."""
    try:
        doc: Any = yaml.safe_load(text) or {}
        return model.model_validate(doc)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        marks = (
            (getattr(exc, "context", None), getattr(exc, "context_mark", None)),
            (problem, getattr(exc, "problem_mark", None)),
        )
        raise ConfigError(
            ": ".join(
                f"{what} at line {mark.line + 1}, column {mark.column + 1}" if mark else what
                for what, mark in marks
                if what
            )
        ) from None
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        raise ConfigError(
            "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in errors)
        ) from None
