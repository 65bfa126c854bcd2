"""The room stand-in must not drift from the real ``rtc.Room`` API it replaces."""

from __future__ import annotations

import inspect

from livekit import rtc
from room_stand_in import LocalParticipantStandIn, PublicationStandIn, RoomStandIn


def _params(fn: object) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]  # type: ignore[arg-type]


def test_room_methods_exist_with_compatible_signatures() -> None:
    for name in ("isconnected", "on", "off", "disconnect"):
        real, ours = getattr(rtc.Room, name), getattr(RoomStandIn, name)
        assert _params(ours) == _params(real), name
        assert inspect.iscoroutinefunction(real) == inspect.iscoroutinefunction(ours), name


def test_local_participant_methods_match() -> None:
    for name in ("publish_track", "unpublish_track"):
        real = getattr(rtc.LocalParticipant, name)
        ours = getattr(LocalParticipantStandIn, name)
        assert _params(ours) == _params(real), name
        assert inspect.iscoroutinefunction(real) and inspect.iscoroutinefunction(ours)


def test_publication_matches() -> None:
    assert inspect.iscoroutinefunction(rtc.LocalTrackPublication.wait_for_subscription)
    assert inspect.iscoroutinefunction(PublicationStandIn.wait_for_subscription)
    assert isinstance(rtc.LocalTrackPublication.sid, property)
