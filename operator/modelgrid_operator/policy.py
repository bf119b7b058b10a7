"""What a tenant may ask of the cluster: the operator's policy over an InferenceModel.

The CRD's schema says what a valid InferenceModel is; this module says what one tenant may do on
a shared cluster, as the operator's settings allow (:class:`~.settings.RenderSettings`):

- a model from the node's file system only under ``allowed_host_paths`` (default: none);
- tolerations and node selectors only with keys in ``allowed_toleration_keys`` /
  ``allowed_node_selector_keys`` (no control-plane nodes by default);
- engine arguments that run code or reach beyond the pod only when ``allowed_engine_args``
  names them.

The operator and ``modelgrid render`` apply it; ``modelgrid up`` does not: on the user's own
machine, their paths and their engine arguments are theirs.
"""

from __future__ import annotations

from modelgrid_operator import api
from modelgrid_operator.render.app_config import node_path
from modelgrid_operator.settings import ENV_PREFIX, RenderSettings
from modelgrid_operator.validation import FieldError, InvalidModel

RISKY_ENGINE_ARGS: dict[str, str] = {
    "trust_remote_code": "runs Python code from the model repository",
    "code_revision": "picks the revision of the model repository's code",
    "worker_cls": "imports a Python class of the tenant's choosing",
    "worker_extension_cls": "imports a Python class of the tenant's choosing",
    "scheduler_cls": "imports a Python class of the tenant's choosing",
    "distributed_executor_backend": "may name a Python class to import",
    "logits_processors": "imports Python classes of the tenant's choosing",
    "io_processor_plugin": "loads a plugin of the tenant's choosing",
    "reasoning_parser_plugin": "runs a Python file of the tenant's choosing",
    "model_class_overrides": "replaces model classes by classes of the tenant's choosing",
    "allowed_local_media_path": "lets requests read files of the pod's file system",
    "hf_config_path": "reads a config from a path of the tenant's choosing",
    "log_config_file": "reads a logging config (which can import handlers) from a path",
    "otlp_traces_endpoint": "sends traces of every request to an endpoint",
    "kv_transfer_config": "connects to remote KV stores and can load a connector module",
    "kv_events_config": "publishes cache events to an endpoint",
    "ec_transfer_config": "connects to remote encoder caches and can load a connector module",
    "weight_transfer_config": "connects to a remote weight transfer backend",
}
"""vLLM ``EngineArgs`` that execute code or reach beyond the pod, and why (vLLM 0.32)."""


def _setting(name: str) -> str:
    return f"operator setting {name} ({ENV_PREFIX}{name.upper()})"


def _key_allowed(key: str, allowed: tuple[str, ...]) -> bool:
    """Exact keys, or prefixes written with a trailing ``*``."""
    return any(key == a or (a.endswith("*") and key.startswith(a[:-1])) for a in allowed)


def _within(path: str, prefix: str) -> bool:
    prefix = "/" + prefix.strip("/")
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def host_path_errors(source: api.ModelSource, settings: RenderSettings) -> list[FieldError]:
    """A path on the node only under an allowed prefix, written without ``..``."""
    if source.kind is not api.SourceKind.PATH:
        return []
    field = "spec.model.uri"
    if ".." in source.location.split("/"):
        return [FieldError(field, f"{source.uri}: a path on the node must not contain '..'")]
    path = node_path(source)
    if any(_within(path, prefix) for prefix in settings.allowed_host_paths):
        return []
    allowed = ", ".join(settings.allowed_host_paths) or "none"
    return [
        FieldError(
            field,
            f"{source.uri}: models from the node's file system are allowed only under the "
            f"prefixes of the {_setting('allowed_host_paths')}; allowed now: {allowed}. "
            "Use a PersistentVolumeClaim (pvc://claim/path) or a Hugging Face id instead",
        )
    ]


def scheduling_errors(spec: api.InferenceModelSpec, settings: RenderSettings) -> list[FieldError]:
    """Tolerations and node selectors only with the keys the operator allows."""
    errors = []
    for p, pool in enumerate(spec.pools):
        for t, toleration in enumerate(pool.tolerations):
            key = toleration.key
            if not key:
                errors.append(
                    FieldError(
                        f"spec.pools[{p}].tolerations[{t}].key",
                        "a toleration without a key tolerates every taint (control-plane "
                        "nodes included); name the taint key",
                    )
                )
            elif not _key_allowed(key, settings.allowed_toleration_keys):
                errors.append(
                    FieldError(
                        f"spec.pools[{p}].tolerations[{t}].key",
                        f"toleration key {key!r} is not allowed by the "
                        f"{_setting('allowed_toleration_keys')}; allowed: "
                        f"{', '.join(settings.allowed_toleration_keys) or 'none'}",
                    )
                )
        for key in pool.node_selector:
            if not _key_allowed(key, settings.allowed_node_selector_keys):
                errors.append(
                    FieldError(
                        f"spec.pools[{p}].nodeSelector.{key}",
                        f"node label {key!r} is not allowed by the "
                        f"{_setting('allowed_node_selector_keys')}; allowed: "
                        f"{', '.join(settings.allowed_node_selector_keys) or 'none'}",
                    )
                )
    return errors


def _normal(name: str) -> str:
    """vLLM's spelling of an argument (``trust-remote-code``, ``trustRemoteCode`` alike)."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return snake.replace("-", "_").lower()


def engine_arg_errors(args: api.EngineArgs, settings: RenderSettings) -> list[FieldError]:
    """Risky engine arguments only when allowed; set to false or null they are harmless."""
    allowed = {_normal(a) for a in settings.allowed_engine_args}
    errors = []
    for name, value in args.extra_args.items():
        key = _normal(name)
        if key in RISKY_ENGINE_ARGS and key not in allowed and value not in (None, False, ""):
            errors.append(
                FieldError(
                    f"spec.engineArgs.extraArgs.{name}",
                    f"{key} {RISKY_ENGINE_ARGS[key]}; it needs the "
                    f"{_setting('allowed_engine_args')} to name it",
                )
            )
    return errors


def check_policy(model: api.InferenceModel, settings: RenderSettings, *, source: str = "") -> None:
    """Refuse a model that asks for more than the operator's settings allow.

    Raises:
        InvalidModel: every violation, each naming its field and the setting that allows it.
    """
    errors = [
        *host_path_errors(model.spec.model, settings),
        *scheduling_errors(model.spec, settings),
        *engine_arg_errors(model.spec.engine_args, settings),
    ]
    if errors:
        raise InvalidModel(errors, source)
