"""What the dashboard's pages offer that hps would refuse, hidden.

The Optuna dashboard offers "Create" and "rename" on its study list; hps refuses both for everyone (a study
made or copied behind hps's back would have no spec, project or leases), and it refuses every change to
callers other than a project-less admin. The dashboard answers any refusal with a bare "Failed to …" that
hides hps's reason, so every HTML page of the dashboard gets one small script, served by hps, that removes
the controls this caller could only fail with. The page is otherwise the dashboard's own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HINTS_PATH = "/dashboard/hps-hints.js"
_TAG = f'<script src="{HINTS_PATH}"></script>'.encode()
# The dashboard's buttons have no ids: they are found by their icon (MUI names it in data-testid). Pinned to
# optuna-dashboard 0.21. Refused to everyone: creating and renaming studies.
_REFUSED = ["AddBoxIcon", "DriveFileRenameOutlineIcon"]
# Refused to all but project-less admins: deleting studies, editing notes.
_CHANGES = ["DeleteIcon", "EditIcon"]
_SCRIPT = """// hps: studies are made with POST /v1/studies (or `hps study create`); this caller may not %s.
(() => {
  const icons = %s.map((name) => `svg[data-testid="${name}"]`).join(",");
  const hide = () => {
    for (const icon of document.querySelectorAll(icons)) {
      const control = icon.closest("button");
      if (control) control.style.display = "none";
    }
  };
  new MutationObserver(hide).observe(document.documentElement, { childList: true, subtree: true });
})();
"""


def hints(may_change: bool) -> bytes:
    """The script for a caller who may (a project-less admin) or may not change studies."""
    icons = _REFUSED if may_change else [*_REFUSED, *_CHANGES]
    what = "create or rename studies" if may_change else "change studies or notes"
    return (_SCRIPT % (what, "[" + ", ".join(f'"{icon}"' for icon in icons) + "]")).encode()


async def send_hints(send: Send, *, may_change: bool) -> None:
    """Answer the hints script."""
    body = hints(may_change)
    kind = b"text/javascript; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_hints(app: ASGIApp) -> ASGIApp:
    """``app`` with the hints script added to the head of every HTML page it answers."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def edit(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if not kind.startswith(b"text/html"):
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks).replace(b"</head>", _TAG + b"</head>", 1)
            kept = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            await send({**start, "headers": [*kept, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, edit)

    return wrapped
