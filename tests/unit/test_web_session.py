"""The suite's session cookie and its cross-site checks (pure: a request is only headers)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import UUID

import pytest
from starlette.requests import Request

from services.gateway.web.session import (
    SessionCodec,
    cross_site_problem,
    csrf_problem,
)

pytestmark = pytest.mark.unit
SECRET = "s" * 40
MEMBER, WORKSPACE = UUID(int=7), UUID(int=1)
ISSUED = datetime(2026, 11, 24, 15, 0, 0, 123456, tzinfo=UTC)


def request(method: str = "POST", **headers: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": method,
            "scheme": "http",
            "server": ("127.0.0.1", 8000),
            "path": "/api/me/status",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                *((k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()),
            ],
        }
    )


def test_a_session_round_trips_and_names_the_member_not_the_token() -> None:
    codec = SessionCodec(SECRET, 3600)
    session, cookie = codec.issue(MEMBER, WORKSPACE, ISSUED)
    assert codec.read(cookie) == session
    assert (session.member_id, session.workspace_id) == (MEMBER, WORKSPACE)
    assert session.credential_issued_at == ISSUED  # to the microsecond: a rotation ends it
    assert len(session.csrf) >= 32
    assert codec.issue(MEMBER, WORKSPACE, ISSUED)[0].csrf != session.csrf  # fresh per sign-in


def test_an_altered_forged_or_expired_cookie_is_no_session() -> None:
    codec = SessionCodec(SECRET, 3600)
    _, cookie = codec.issue(MEMBER, WORKSPACE, ISSUED)
    assert codec.read(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert codec.read(SessionCodec("t" * 40, 3600).issue(MEMBER, WORKSPACE, ISSUED)[1]) is None
    assert codec.read("") is None
    assert codec.read(None) is None
    assert codec.read("not-a-cookie") is None
    short = SessionCodec(SECRET, 1)
    _, soon_stale = short.issue(MEMBER, WORKSPACE, ISSUED)
    time.sleep(2.1)
    assert short.read(soon_stale) is None


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="SWITCHBOARD_SESSION_SECRET"):
        SessionCodec("short", 3600)


def test_a_write_from_the_suites_own_page_passes() -> None:
    session, _ = SessionCodec(SECRET, 3600).issue(MEMBER, WORKSPACE, ISSUED)
    own = request(origin="http://127.0.0.1:8000")
    assert csrf_problem(own, session, session.csrf) is None
    # A browser that sends no Origin still says where the request came from.
    assert csrf_problem(request(sec_fetch_site="same-origin"), session, session.csrf) is None


def test_a_write_from_another_origin_or_without_the_token_is_refused() -> None:
    session, _ = SessionCodec(SECRET, 3600).issue(MEMBER, WORKSPACE, ISSUED)
    # Another port of the same host is the same *site*: SameSite lets the cookie through.
    other_port = request(origin="http://127.0.0.1:9999")
    assert "http://127.0.0.1:9999" in (csrf_problem(other_port, session, session.csrf) or "")
    cross = request(sec_fetch_site="cross-site")
    assert csrf_problem(cross, session, session.csrf) is not None
    own = request(origin="http://127.0.0.1:8000")
    assert "X-CSRF-Token" in (csrf_problem(own, session, None) or "")
    assert csrf_problem(own, session, "wrong") is not None
    assert cross_site_problem(request(origin="null")) is not None
