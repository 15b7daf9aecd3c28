"""The rating page a solved ticket's email links to: ``GET /csat/{token}`` shows it (viewing changes
nothing, so mail scanners that open links are harmless), ``POST`` records the answer once."""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from chatserver.api.common import ctx
from chatserver.errors import Invalid, NotFound
from chatserver.tickets.csat import CsatService, LinkProblem

PROBLEMS = {
    "forged": (400, "This rating link is not valid."),
    "expired": (410, "This rating link has expired."),
    "used": (409, "This rating link was already used. Thank you, we have your answer."),
}

_STYLE = (
    "body{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "button{font-size:1.2rem;margin:.2rem;padding:.5rem .9rem;cursor:pointer}"
    "textarea{width:100%;min-height:5rem;margin:.5rem 0}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(
        doc,
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"},
    )


def _problem(exc: LinkProblem) -> HTMLResponse:
    status, text = PROBLEMS[exc.kind]
    return _page("Rating", f"<p>{html.escape(text)}</p>", status)


def _csat(request: Request) -> CsatService | None:
    return ctx(request).service.csat


async def rating_page(request: Request) -> Response:
    """The rating form of a CSAT link."""
    csat = _csat(request)
    if csat is None:
        return _page("Rating", "<p>Ratings are not enabled.</p>", 404)
    token = request.path_params["token"]
    try:
        ticket = await csat.check_link(token)
    except LinkProblem as exc:
        return _problem(exc)
    buttons = "".join(
        f'<button type="submit" name="score" value="{n}" aria-label="{n} of 5">{n}</button>'
        for n in range(1, 6)
    )
    body = (
        f"<p>How satisfied are you with how we handled ticket #{ticket.number}: "
        f"<q>{html.escape(ticket.subject)}</q>?</p>"
        f'<form method="post" action="/csat/{html.escape(token, quote=True)}">'
        '<label for="comment">Anything to add? (optional)</label>'
        '<textarea id="comment" name="comment" maxlength="2000"></textarea>'
        f"<p>1 = very unsatisfied, 5 = very satisfied</p><p>{buttons}</p></form>"
    )
    return _page("How did we do?", body)


async def submit_rating(request: Request) -> Response:
    """Record the answer of a CSAT link (once)."""
    csat = _csat(request)
    if csat is None:
        return _page("Rating", "<p>Ratings are not enabled.</p>", 404)
    raw = await request.body()
    form = parse_qs(raw[:8192].decode("utf-8", "replace"))
    score_raw = (form.get("score") or [""])[0]
    comment = (form.get("comment") or [""])[0].strip() or None
    score: object = int(score_raw) if score_raw.isdigit() else score_raw
    try:
        ticket, rating = await csat.submit_from_link(request.path_params["token"], score, comment)
    except LinkProblem as exc:
        return _problem(exc)
    except Invalid:
        return _page("Rating", "<p>Please choose a score from 1 to 5.</p>", 422)
    except NotFound:
        return _problem(LinkProblem("forged"))
    return _page("Thank you!", f"<p>You rated ticket #{ticket.number} {rating.score} of 5.</p>")


routes = [
    Route("/csat/{token}", rating_page, methods=["GET"]),
    Route("/csat/{token}", submit_rating, methods=["POST"]),
]
