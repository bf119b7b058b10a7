"""What keeps the catalog current from outside: the config file (and its keys file), polled for
changes, and the Kubernetes watch of InferenceModels and the keys Secret.

The Kubernetes watch runs in threads (:func:`~.sources.kubernetes_watchers`); each report is
parsed in its thread and handed to the event loop in one callback, so no request sees half of a
change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from .catalog import Catalog
from .config import AuthConfig, GatewayConfig, load_config
from .sources import NamespacedModels, keys_from_secret

logger = logging.getLogger(__name__)

FILE_POLL_S = 1.0
"""How often the config file and the keys file are checked for a change."""


class FileWatch:
    """Reloads the config file (and the keys file it names) when either changes; a file that
    fails to load is logged and the last good config stays.

    Args:
        path: The config file.
        config: What it holds now.
        on_reload: Given each new config (on the event loop).
    """

    def __init__(
        self, path: Path, config: GatewayConfig, on_reload: Callable[[GatewayConfig], None]
    ) -> None:
        self.path = path
        self.config = config
        self.on_reload = on_reload

    def _stamp(self) -> tuple[float, ...]:
        paths = [self.path, self.config.auth.keys_file]
        return tuple(p.stat().st_mtime if p and p.exists() else 0.0 for p in paths)

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Poll until cancelled (``session``: unused, every service is started with it)."""
        seen = self._stamp()
        while True:
            await asyncio.sleep(FILE_POLL_S)
            now = self._stamp()
            if now == seen:
                continue
            seen = now
            try:
                config = load_config(self.path)
            except Exception as exc:  # noqa: BLE001 - keep serving the last good config
                logger.error("config %s: %s; keeping the previous config", self.path, exc)
                continue
            self.config = config
            self.on_reload(config)
            logger.info("config reloaded: %d static models", len(config.models))


class KubernetesWatch:
    """InferenceModels (one watch per namespace, each its own source, so one namespace's list
    never replaces another's) and the keys Secret, reported to the catalog.

    Args:
        catalog: Where models and keys are reported.
        auth: Where the keys Secret is (``secret_name``; none: no Secret is watched).
        namespaces: Watch these namespaces only (empty: all).
    """

    def __init__(self, catalog: Catalog, auth: AuthConfig, namespaces: Sequence[str]) -> None:
        self.catalog = catalog
        self.auth = auth
        self.namespaces = tuple(namespaces)
        self._watchers: list[Any] = []

    def start(self, session: aiohttp.ClientSession) -> None:
        """Start the watch threads; until each has listed once its source is pending."""
        from .sources import current_namespace, kubernetes_watchers

        loop = asyncio.get_running_loop()
        catalog, auth = self.catalog, self.auth
        secret = None
        if auth.secret_name:
            # the gateway's own namespace, not the watched one: that is where its chart puts it
            secret = (auth.secret_namespace or current_namespace(), auth.secret_name)
            catalog.pending_sources.add("secret")

        watched = NamespacedModels()  # name claims are resolved across every namespace

        def on_models_of(source: str) -> Callable[[list[dict[str, Any]]], None]:
            def on_models(objs: list[dict[str, Any]]) -> None:
                entries = watched.report(source, objs)  # parse in the thread, swap in loop

                def swap() -> None:  # in one callback: no request sees half of the change
                    for each, listed in entries.items():
                        catalog.set_entries(each, listed)

                loop.call_soon_threadsafe(swap)

            return on_models

        namespaces: tuple[str | None, ...] = self.namespaces or (None,)
        models = {f"kubernetes:{ns or '*'}": ns for ns in namespaces}
        catalog.pending_sources.update(models)

        def on_secret(objs: list[dict[str, Any]]) -> None:
            try:
                keys = [k for o in objs for k in keys_from_secret(o, auth.secret_key)]
            except Exception as exc:  # noqa: BLE001 - a bad Secret must not stop the watch
                logger.error("keys Secret: %s; keeping the previous keys", exc)
                return
            loop.call_soon_threadsafe(catalog.set_keys, "secret", keys)

        self._watchers = kubernetes_watchers(
            namespaces={ns: on_models_of(source) for source, ns in models.items()},
            secret=secret,
            on_secret=on_secret,
        )
        for watcher in self._watchers:
            watcher.start()

    async def stop(self) -> None:
        """Stop the watch threads."""
        for watcher in self._watchers:
            watcher.stop()
