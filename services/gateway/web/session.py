"""The agent suite's browser session: a signed, expiring cookie and its CSRF token.

A member signs in once with its token; the gateway answers with a cookie that names the
member (never the token), signed with ``SWITCHBOARD_SESSION_SECRET`` by itsdangerous and
stamped with the time it was issued, so it expires by itself. The cookie is ``HttpOnly``
(scripts cannot read it) and ``SameSite=Strict`` (another site's page cannot send it).

SameSite does not tell ports apart: a page on ``127.0.0.1:9999`` is the *same site* as the
gateway on ``127.0.0.1:8000`` and its forms would carry the cookie. So every write made with
the cookie must also carry the session's CSRF token in ``X-CSRF-Token`` (the page holds it in
a ``<meta>``; a form posts it as ``csrf``), and a browser's ``Origin`` must be the gateway's own.
Bearer-token calls are not touched: a browser never adds an Authorization header by itself.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "switchboard_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Session:
    member_id: UUID
    workspace_id: UUID
    csrf: str
    # When the token signed in with was issued: a new token (a rotation) ends the session.
    credential_issued_at: datetime


class SessionCodec:
    """Issues and reads session cookies."""

    def __init__(self, secret: str, max_age_seconds: float) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"SWITCHBOARD_SESSION_SECRET must be at least {MIN_SECRET_LENGTH} characters"
                " (it signs the agent suite's session cookies)"
            )
        self.serializer = URLSafeTimedSerializer(secret, salt="switchboard.session")
        self.max_age_seconds = max_age_seconds

    def issue(
        self, member_id: UUID, workspace_id: UUID, credential_issued_at: datetime
    ) -> tuple[Session, str]:
        """A new session (fresh CSRF token) and its cookie value."""
        session = Session(member_id, workspace_id, secrets.token_urlsafe(32), credential_issued_at)
        value = self.serializer.dumps(
            {
                "m": str(member_id),
                "w": str(workspace_id),
                "c": session.csrf,
                "k": credential_issued_at.isoformat(),
            }
        )
        return session, value

    def read(self, value: str | None) -> Session | None:
        """The session a cookie holds; None if absent, forged, altered or expired."""
        if not value:
            return None
        try:
            data = self.serializer.loads(value, max_age=int(self.max_age_seconds))
            issued = datetime.fromisoformat(str(data["k"]))
            return Session(UUID(data["m"]), UUID(data["w"]), str(data["c"]), issued)
        except (BadSignature, KeyError, TypeError, ValueError):
            return None

    def set_cookie(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(self.max_age_seconds),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def cross_site_problem(request: Request) -> str | None:
    """Why a request cannot be the gateway's own page talking (None: it can be).

    A browser sends ``Origin`` with every POST, PUT, PATCH and DELETE; when it is missing
    (an older browser), ``Sec-Fetch-Site`` still says where the request came from.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        if origin != own_origin(request):
            return f"a request from {origin} may not act with this site's session"
        return None
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site not in (None, "same-origin", "none"):
        return f"a {fetch_site} request may not act with this site's session"
    return None


def csrf_problem(request: Request, session: Session, presented: str | None) -> str | None:
    """Why a cookie-authenticated write is refused (None: it is the suite's own page)."""
    problem = cross_site_problem(request)
    if problem is not None:
        return problem
    if not presented or not hmac.compare_digest(presented, session.csrf):
        return "missing or wrong X-CSRF-Token for this session; reload the page"
    return None
