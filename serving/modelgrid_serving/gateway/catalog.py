"""What the gateway can route, and who may use it: every source's models and keys, and the
routing table built from them.

Sources (the static file, the Kubernetes watch, the keys Secret) and the health probe report
here. Every change rebuilds the table and swaps it whole, so a request sees one consistent table;
what follows the table (the balancer's memory, the ready-backends gauge) is told through the
listeners given at construction. Event loop thread only: watch threads hop to the loop
(``call_soon_threadsafe``) before they report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from itertools import chain

from .auth import KeyPolicy, KeyRing
from .config import GatewayConfig, KeyConfig, check_unique_keys, load_keys
from .routing import ModelEntry, Route, RoutingTable, allowed_routes, build_table
from .sources import static_entries

logger = logging.getLogger(__name__)

TableListener = Callable[[RoutingTable], None]
"""Told each new table, right after it is swapped in."""


class Catalog:
    """The routing table and the key ring, rebuilt from the latest report of every source.

    Args:
        auth_enabled: Auth is on (until a config file says otherwise: :meth:`apply_static`).
        max_concurrent_per_key: The default per-key bound on requests in flight (likewise).
        listeners: Called with each new table (in order).
    """

    def __init__(
        self,
        *,
        auth_enabled: bool,
        max_concurrent_per_key: int,
        listeners: Iterable[TableListener] = (),
    ) -> None:
        self.table = RoutingTable()
        self.keys = KeyRing((), enabled=auth_enabled, max_concurrent=max_concurrent_per_key)
        self.pending_sources: set[str] = set()
        """Sources not heard from yet (``/ready`` answers 503 while any is left)."""
        self.down: frozenset[str] = frozenset()
        """Backend URLs the health probe found down: out of the table until they answer."""
        self._listeners = tuple(listeners)
        self._entries: dict[str, list[ModelEntry]] = {}
        self._key_sources: dict[str, list[KeyConfig]] = {}
        self._auth_enabled = auth_enabled
        self._anonymous = False
        self._max_concurrent_per_key = max_concurrent_per_key
        self._allowed: dict[str, dict[str, Route]] = {}
        """key name -> what it may use (names are unique), for the current table and keys."""
        self._withdrawn: set[str] = set()
        """Entry sources being unloaded: out of the table, whatever their source reports."""

    # ---- what sources report ----------------------------------------------------------------

    def apply_static(self, config: GatewayConfig, *, created: int, initial: bool = False) -> None:
        """Take a (re)loaded config file: its models, its keys (inline and the keys file) and
        its auth settings. A keys file that cannot be used stops the gateway at start
        (``initial``) and is logged and ignored on reload (the previous keys stay)."""
        self._auth_enabled = config.auth.enabled
        self._anonymous = config.auth.anonymous
        self._max_concurrent_per_key = config.limits.max_concurrent_per_key
        self._entries["static"] = static_entries(config, created=created)
        self.set_keys("inline", list(config.auth.keys))
        if config.auth.keys_file is not None:
            try:
                self.set_keys("file", load_keys(config.auth.keys_file.read_text()), strict=True)
            except (OSError, ValueError) as exc:  # ConfigError: its message shows no value
                if initial:
                    raise
                logger.error(
                    "keys file %s: %s; keeping the previous keys", config.auth.keys_file, exc
                )
        self._rebuild()

    def set_entries(self, source: str, entries: list[ModelEntry]) -> None:
        """Replace one source's models and rebuild the table."""
        self._entries[source] = entries
        self.pending_sources.discard(source)
        self._rebuild()

    def set_keys(self, source: str, keys: list[KeyConfig], *, strict: bool = False) -> None:
        """Replace one source's keys. Names must stay unique across every source: a source
        that would repeat one is refused (``strict``: raised, else logged), and the previous
        keys stay.

        Raises:
            ValueError: ``strict`` and a key name or hash is already another source's.
        """
        sources = {**self._key_sources, source: keys}
        try:
            check_unique_keys(list(chain(*sources.values())))
        except ValueError as exc:
            if strict:
                raise
            logger.error("keys from %s: %s; keeping the previous keys", source, exc)
            return
        self._key_sources = sources
        self.pending_sources.discard(source)
        self.keys = KeyRing(
            chain(*sources.values()),
            enabled=self._auth_enabled,
            anonymous=self._anonymous,
            max_concurrent=self._max_concurrent_per_key,
        )
        self._allowed.clear()

    def set_down(self, down: frozenset[str]) -> None:
        """The backends the health probe finds down now; rebuilds the table."""
        self.down = down
        self._rebuild()

    def withdraw(self, source: str) -> None:
        """Take the model of entry source ``source`` (``ModelEntry.source``) out of the table
        now, and keep it out while its source still reports it: an unload's first step, so
        that new requests get 404 while those in flight finish."""
        self._withdrawn.add(source)
        self._rebuild()

    def restore(self, source: str) -> None:
        """Route ``source``'s model again when reported (a model of that name loaded anew)."""
        if source in self._withdrawn:
            self._withdrawn.discard(source)
            self._rebuild()

    def backend_urls_of(self, source: str) -> set[str]:
        """The backend URLs that entry source ``source`` reported."""
        return {
            b.url for e in chain(*self._entries.values()) if e.source == source for b in e.backends
        }

    def entries(self, source: str) -> list[ModelEntry]:
        """The models ``source`` reported last (none yet: empty)."""
        return self._entries.get(source, [])

    # ---- what requests read ----------------------------------------------------------------

    def allowed_for(self, policy: KeyPolicy) -> Mapping[str, Route] | None:
        """What ``policy`` may use in the current table (canonical model -> its route for the
        key); ``None``: everything. Computed once per key and table."""
        if not policy.restricted:
            return None
        allowed = self._allowed.get(policy.name)
        if allowed is None:
            allowed = self._allowed[policy.name] = allowed_routes(
                self.table, policy.models, policy.namespaces
            )
        return allowed

    def _rebuild(self) -> None:
        entries: Iterable[ModelEntry] = chain(*self._entries.values())
        if self._withdrawn:
            entries = (e for e in entries if e.source not in self._withdrawn)
        table = build_table(entries, down=self.down)
        self.table = table
        self._allowed.clear()
        for listener in self._listeners:
            listener(table)


def backend_urls(table: RoutingTable) -> set[str]:
    """Every backend URL of every model in ``table``, ready or not."""
    return {b.url for e in table.models.values() for b in e.backends}
