"""A small aiohttp client for the LemonSlice session REST API (start and terminate a session).

Endpoints, as documented at lemonslice.com/docs/api-reference and used by the livekit-agents
LemonSlice plugin: ``POST {api_url}`` creates a session whose avatar joins a LiveKit room with
the token we mint, answering ``{"session_id": ...}``; ``POST {api_url}/{session_id}/control``
with ``{"event": "terminate"}`` removes the avatar. Both authenticate with ``X-API-Key``.

Retries. The plugin retries every failure (``APIConnectOptions``: 3 retries 2 s apart, and no
bound on the answer's wait). Creating a session is not idempotent and the API documents no
idempotency key and no way to list sessions, so a retry after a request that may have reached
LemonSlice could start a second billed avatar whose id we never learn. We therefore retry only
what created nothing: a connection that could not be made, and a 429 or 503 answer (the
service said "not now"). A 500, 502 or 504 may come after the session was made, so it is not
retried here (its ``retryable`` still follows livekit-agents' rule: a caller may decide to).
A request that was sent and got no answer within ``request_timeout`` (default 60 s, the
plugin's tolerance) is not retried either: if LemonSlice did create that session, its avatar
stays billed until LemonSlice's own ``idle_timeout`` ends it (documented limit; the provider
logs it). Once the id is known, closing terminates the session.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from .base import (
    ProviderConfigError,
    ProviderDisconnected,
    ProviderError,
    ProviderStatusError,
    ProviderTimeout,
)

__all__ = [
    "AUDIO_SAMPLE_RATES",
    "DEFAULT_API_URL",
    "LemonSliceAPI",
    "LemonSliceConfigError",
    "LemonSliceDisconnected",
    "LemonSliceError",
    "LemonSliceHTTPError",
    "LemonSliceSessionSpec",
    "LemonSliceTimeout",
]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://lemonslice.com/api/liveai/sessions"
AUDIO_SAMPLE_RATES = (16000, 22050, 24000, 44100, 48000)
"""Speech rates LemonSlice accepts as ``audio_sample_rate`` (livekit-plugins-lemonslice 1.8.9)."""
DEFAULT_REQUEST_TIMEOUT = 60.0
_MAX_ERROR_CHARS = 300
_RETRIES = 3
_RETRY_INTERVAL = 2.0


class LemonSliceError(ProviderError):
    """A LemonSlice failure (the catchable base is :class:`ProviderError`)."""

    provider = "LemonSlice"


class LemonSliceConfigError(LemonSliceError, ProviderConfigError):
    """LemonSlice is configured wrongly (missing key or agent, a bad value)."""


class LemonSliceTimeout(LemonSliceError, ProviderTimeout):
    """LemonSlice, or its avatar, did not answer in time."""


class LemonSliceDisconnected(LemonSliceError, ProviderDisconnected):
    """The LemonSlice avatar or its side room went away."""


class LemonSliceHTTPError(LemonSliceError, ProviderStatusError):
    """LemonSlice answered with an HTTP error: ``status_code`` and the server's own explanation
    (``server_message``, secrets removed) are kept; ``retryable`` per livekit-agents' rule."""

    def __init__(self, what: str, status: int, server_message: str) -> None:
        text = (
            f"{what}: HTTP {status}: {server_message}"
            if server_message
            else f"{what}: HTTP {status}"
        )
        ProviderStatusError.__init__(self, text, status_code=status, body=server_message or None)
        self.server_message = server_message

    @property
    def status(self) -> int:
        """The HTTP status (same as ``status_code``)."""
        return self.status_code


@dataclass(frozen=True, slots=True)
class LemonSliceSessionSpec:
    """What the avatar should look like and how it behaves; exactly one of agent id / image URL."""

    agent_id: str | None = None
    agent_image_url: str | None = None
    agent_prompt: str | None = None
    agent_idle_prompt: str | None = None
    idle_timeout: int | None = None
    """Seconds without audio before LemonSlice ends the session (LemonSlice's default when None:
    60 s per its docs); negative means never."""
    audio_sample_rate: int = 24000
    """Rate of the speech we stream, declared to LemonSlice (one of :data:`AUDIO_SAMPLE_RATES`)."""
    extra_payload: dict[str, Any] | None = None
    """Further top-level request fields (documented options this client has no argument for)."""

    def __post_init__(self) -> None:
        if bool(self.agent_id) == bool(self.agent_image_url):
            raise LemonSliceConfigError("needs exactly one of agent_id or agent_image_url")
        if self.audio_sample_rate not in AUDIO_SAMPLE_RATES:
            allowed = ", ".join(map(str, AUDIO_SAMPLE_RATES))
            raise LemonSliceConfigError(
                f"audio_sample_rate must be one of {allowed}, got {self.audio_sample_rate!r}"
            )


class LemonSliceAPI:
    """Starts and terminates LemonSlice sessions. Never logs the key or the LiveKit token.

    Failures raise :class:`LemonSliceHTTPError` (HTTP 4xx/5xx with the server's message),
    :class:`LemonSliceTimeout` (no answer within ``request_timeout``, not retried) or
    :class:`LemonSliceDisconnected` (LemonSlice unreachable after ``retries`` tries,
    ``retry_interval`` apart), :class:`LemonSliceError` (malformed answer). See the module's
    docstring for what is retried and why.
    """

    def __init__(
        self,
        api_key: str,
        *,
        api_url: str = DEFAULT_API_URL,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        retries: int = _RETRIES,
        retry_interval: float = _RETRY_INTERVAL,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not api_key:
            raise LemonSliceConfigError("the API key is empty")
        if request_timeout <= 0:
            raise LemonSliceConfigError(f"request_timeout must be positive, got {request_timeout}")
        if retries < 0 or retry_interval < 0:
            raise LemonSliceConfigError("retries and retry_interval must not be negative")
        self._retries = retries
        self._retry_interval = retry_interval
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
            "audio_sample_rate": spec.audio_sample_rate,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if spec.extra_payload:
            body.update(spec.extra_payload)
        self._secrets.append(livekit_token)
        answer = await self._post(self._api_url, body, what="LemonSlice refused to start a session")
        session_id = answer.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise LemonSliceError("answered without a session_id")
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
        """POST with the retries the module's docstring describes."""
        for attempt in range(self._retries + 1):
            try:
                return await self._post_once(url, body, what=what)
            except (LemonSliceHTTPError, LemonSliceDisconnected) as exc:
                if not _created_nothing(exc) or attempt == self._retries:
                    raise
                logger.warning("%s; retrying in %g s", exc, self._retry_interval)
            await asyncio.sleep(self._retry_interval)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(self, url: str, body: dict[str, Any], *, what: str) -> dict[str, Any]:
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
        except asyncio.TimeoutError:
            raise LemonSliceTimeout(
                f"no answer within {self._request_timeout:g} s ({what.lower()} may still happen)",
                retryable=False,
            ) from None
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was created
            raise LemonSliceDisconnected(
                f"cannot reach LemonSlice: {self._redact(type(exc).__name__ + ': ' + str(exc))}"
            ) from None
        except aiohttp.ClientError as exc:  # the request may have arrived: not retried
            raise LemonSliceDisconnected(
                f"the request failed: {self._redact(type(exc).__name__ + ': ' + str(exc))}",
                retryable=False,
            ) from None
        if not text.strip():
            return {}
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            raise LemonSliceError("answered with something that is not JSON") from None
        if not isinstance(answer, dict):
            raise LemonSliceError("answered with JSON that is not an object")
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


def _created_nothing(exc: LemonSliceError) -> bool:
    """Whether a failed request certainly started no session (see the module docstring)."""
    if isinstance(exc, LemonSliceHTTPError):
        return exc.status_code in (429, 503)
    return exc.retryable  # LemonSliceDisconnected: True only when no connection was made
