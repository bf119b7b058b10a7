"""The admin API's models in ``modelgrid up --admin``: loaded into the running process.

That process (``modelgrid_serving.local_admin``) owns Ray and deploys what is loaded; it serves
a control endpoint on loopback with a bearer token it wrote to a file for this gateway. Its
models look like InferenceModels with the status an operator would write (namespace ``local``),
so this module is both the :class:`~.admin.ModelStore` over that endpoint and the source that
reports them to the catalog, polled as the Kubernetes watch is watched, and routed alike
(:func:`~.sources.entries_from_inferencemodels`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp

from ..errors import APIError, Conflict, InvalidRequest
from .catalog import Catalog
from .sources import entries_from_inferencemodels

logger = logging.getLogger(__name__)

SOURCE = "modelgrid-up"
"""The catalog source of the loaded models."""
POLL_S = 0.5
UNLOAD_TIMEOUT_S = 900.0
"""A DELETE waits for a deploy under way to finish first (a minute or more on CPU)."""


class ControlFailed(APIError, status=502, error_type="server_error", code="control_failed"):
    """502: ``modelgrid up``'s control endpoint did not answer as it should."""


class UpModels:
    """A :class:`~.admin.ModelStore` and catalog source over ``modelgrid up``'s control endpoint.

    Args:
        url: The control endpoint (loopback).
        token_file: Holds its bearer token.
        catalog: Where the loaded models are reported.
    """

    namespace = "local"

    def __init__(self, url: str, token_file: Path, catalog: Catalog) -> None:
        self.url = url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token_file.read_text().strip()}"}
        self.catalog = catalog
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def source_of(self, name: str) -> str:
        """The catalog source of the model's entry (:func:`~.sources.entry_from_inferencemodel`)."""
        return f"kubernetes:{self.namespace}/{name}"

    # ---- the store ----------------------------------------------------------------------

    async def create(self, document: dict[str, Any]) -> dict[str, Any]:
        status, body = await self._call("POST", "/models", document)
        if status == 409:
            raise Conflict(_message(body), param="name")
        if status == 400:
            raise InvalidRequest(_message(body), param="uri")
        return self._expect(status, body, 202)

    async def get(self, name: str) -> dict[str, Any] | None:
        status, body = await self._call("GET", f"/models/{name}")
        return None if status == 404 else self._expect(status, body, 200)

    async def list(self) -> list[dict[str, Any]]:
        status, body = await self._call("GET", "/models")
        return list(self._expect(status, body, 200).get("items") or [])

    async def delete(self, name: str, uid: str | None) -> None:
        status, body = await self._call("DELETE", f"/models/{name}", timeout_s=UNLOAD_TIMEOUT_S)
        if status != 404:
            self._expect(status, body, 200)
        await self._report()

    # ---- the catalog source (a gateway service) ------------------------------------------

    def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            try:
                await self._report()
            except Exception as exc:  # noqa: BLE001 - keep polling; the last listing stays
                logger.warning("modelgrid up's models: %s", exc)
            await asyncio.sleep(POLL_S)

    async def _report(self) -> None:
        self.catalog.set_entries(SOURCE, entries_from_inferencemodels(await self.list()))

    # ---- calls ---------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, payload: Any = None, *, timeout_s: float = 30.0
    ) -> tuple[int, Any]:
        if self._session is None:
            raise ControlFailed("The gateway has not started.")
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.request(
                method, self.url + path, json=payload, headers=self._headers, timeout=timeout
            ) as resp:
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ControlFailed(f"modelgrid up did not answer: {exc!r}") from None

    @staticmethod
    def _expect(status: int, body: Any, expected: int) -> Any:
        if status != expected or not isinstance(body, dict):
            raise ControlFailed(f"modelgrid up answered {status}: {_message(body)}")
        return body


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message")) if isinstance(error, dict) else str(body)[:200]
