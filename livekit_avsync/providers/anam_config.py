"""Anam's configuration: loading the SDK, settings with env fallbacks, SDK options dataclasses."""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any, TypeVar

from .anam_errors import AnamConfigError
from .base import setting

__all__ = ["RESERVED_PERSONA_FIELDS", "build_options", "load_sdk", "required"]

T = TypeVar("T")

RESERVED_PERSONA_FIELDS = frozenset({"persona_id", "avatar_id", "enable_audio_passthrough"})


def load_sdk() -> ModuleType:
    """The ``anam`` package, or a ProviderError saying how to install it."""
    try:
        return importlib.import_module("anam")
    except ImportError as exc:
        raise AnamConfigError(
            "the provider needs the Anam SDK: pip install 'livekit-avsync[anam]'"
        ) from exc


def required(value: str | None, env: str, what: str) -> str:
    found = setting(value, env, what=what)
    assert found is not None  # setting() raises when a required value is missing
    return found


def build_options(
    cls: type[T],
    what: str,
    options: dict[str, Any] | None,
    *,
    reserved: frozenset[str] = frozenset(),
    **fixed: Any,
) -> T:
    """An SDK options dataclass from ``options`` plus ``fixed`` fields, with clear errors."""
    options = dict(options or {})
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    if unknown:
        raise AnamConfigError(
            f"unknown {what} {', '.join(map(repr, unknown))}; "
            f"{cls.__name__} accepts: {', '.join(sorted(known - reserved))}"
        )
    taken = sorted(set(options) & reserved)
    if taken:
        raise AnamConfigError(
            f"{what} cannot set {', '.join(map(repr, taken))}: AnamAvatar sets it"
        )
    try:
        return cls(**options, **fixed)
    except (TypeError, ValueError) as exc:
        raise AnamConfigError(f"invalid {what}: {exc}") from None
