"""A small aiohttp client for the LemonSlice session REST API (start and terminate a session).

Endpoints, as documented at lemonslice.com/docs/api-reference and used by the livekit-agents
LemonSlice plugin: ``POST {api_url}`` creates a session whose avatar joins a LiveKit room with
the token we mint, answering ``{"session_id": ...}``; ``POST {api_url}/{session_id}/control``
with ``{"event": "terminate"}`` removes the avatar. Both authenticate with ``X-API-Key``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from .base import ProviderError, ProviderTimeout

__all__ = [
    "DEFAULT_API_URL",
    "LemonSliceAPI",
    "LemonSliceHTTPError",
    "LemonSliceSessionSpec",
]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://lemonslice.com/api/liveai/sessions"
_MAX_ERROR_CHARS = 300


class LemonSliceHTTPError(ProviderError):
    """LemonSlice answered with an HTTP error; ``status`` and the server's ``message`` are kept."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(
            f"{what}: HTTP {status}: {message}" if message else f"{what}: HTTP {status}"
        )
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class LemonSliceSessionSpec:
    """What the avatar should look like and how it behaves; exactly one of agent id / image URL."""

    agent_id: str | None = None
    agent_image_url: str | None = None
    agent_prompt: str | None = None
    agent_idle_prompt: str | None = None
    idle_timeout: int | None = None
    """Seconds without audio before LemonSlice ends the session; negative means never."""
    extra_payload: dict[str, Any] | None = None
    """Further top-level request fields (documented options this client has no argument for)."""

    def __post_init__(self) -> None:
        if bool(self.agent_id) == bool(self.agent_image_url):
            raise ProviderError("LemonSlice needs exactly one of agent_id or agent_image_url")


class LemonSliceAPI:
    """Starts and terminates LemonSlice sessions. Never logs the key or the LiveKit token.

    Failures raise :class:`LemonSliceHTTPError` (HTTP 4xx/5xx with the server's message),
    :class:`ProviderTimeout` (no answer within ``request_timeout``) or :class:`ProviderError`
    (connection failure, malformed answer). Session creation is not retried: it is not
    idempotent (a retried 5xx could start a second, billed avatar), so the caller decides.
    """

    def __init__(
        self,
        api_key: str,
        *,
        api_url: str = DEFAULT_API_URL,
        request_timeout: float = 15.0,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not api_key:
            raise ProviderError("LemonSlice API key is empty")
        if request_timeout <= 0:
            raise ProviderError(f"request_timeout must be positive, got {request_timeout}")
        self._api_key = api_key
        self._api_url = api_url.rstrip("/")
        self._request_timeout = request_timeout
        self._session = http_session
        self._owns_session = http_session is None
        self._secrets: list[str] = [api_key]

    async def start_session(
        self, spec: LemonSliceSessionSpec, *, livekit_url: str, livekit_token: str
    ) -> str:
        """Create a session whose avatar joins ``livekit_url`` with ``livekit_token``; its id."""
        body: dict[str, Any] = {
            "transport_type": "livekit",
            "properties": {"livekit_url": livekit_url, "livekit_token": livekit_token},
        }
        optional = {
            "agent_id": spec.agent_id,
            "agent_image_url": spec.agent_image_url,
            "agent_prompt": spec.agent_prompt,
            "agent_idle_prompt": spec.agent_idle_prompt,
            "idle_timeout": spec.idle_timeout,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if spec.extra_payload:
            body.update(spec.extra_payload)
        self._secrets.append(livekit_token)
        answer = await self._post(self._api_url, body, what="LemonSlice refused to start a session")
        session_id = answer.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise ProviderError("LemonSlice answered without a session_id")
        logger.info("LemonSlice session started", extra={"lemonslice_session_id": session_id})
        return session_id

    async def terminate_session(self, session_id: str) -> None:
        """Ask LemonSlice to shut the avatar down and remove it from the room."""
        url = f"{self._api_url}/{session_id}/control"
        await self._post(url, {"event": "terminate"}, what="LemonSlice refused to end the session")
        logger.info("LemonSlice session terminated", extra={"lemonslice_session_id": session_id})

    async def aclose(self) -> None:
        """Close the HTTP session if this client created it. Idempotent."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def _post(self, url: str, body: dict[str, Any], *, what: str) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        headers = {"X-API-Key": self._api_key, "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=self._request_timeout)
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=timeout
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise LemonSliceHTTPError(what, response.status, self._error_message(text))
        except asyncio.TimeoutError as exc:
            raise ProviderTimeout(
                f"LemonSlice did not answer within {self._request_timeout:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"cannot reach LemonSlice: {self._redact(type(exc).__name__ + ': ' + str(exc))}"
            ) from None
        if not text.strip():
            return {}
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            raise ProviderError("LemonSlice answered with something that is not JSON") from None
        if not isinstance(answer, dict):
            raise ProviderError("LemonSlice answered with JSON that is not an object")
        return answer

    def _error_message(self, text: str) -> str:
        """The server's own explanation from an error body, shortened and with secrets removed."""
        message = text.strip()
        try:
            parsed = json.loads(message)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            for key in ("error", "detail", "message"):
                value = parsed.get(key)
                if isinstance(value, dict):
                    value = value.get("message", value)
                if value:
                    message = value if isinstance(value, str) else json.dumps(value)
                    break
        message = self._redact(message)
        if len(message) > _MAX_ERROR_CHARS:
            message = message[:_MAX_ERROR_CHARS] + "..."
        return message

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
