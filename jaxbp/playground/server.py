"""The ASGI app (Starlette): the page, its static files and one WebSocket per tab.

Protocol on ``/ws`` (JSON text from the page; JSON text or binary frames back):

- on connect the server opens a :class:`~jaxbp.playground.session.Session` (or sends
  ``{"type": "error", "fatal": true}`` and closes when :data:`MAX_SESSIONS` are open)
  and sends ``setup`` (data, shapes) and one binary ``frame``;
- ``settings`` {settings} reconfigures (``setup`` + frame, or ``error`` and nothing
  changes); ``play``, ``pause``, ``step``, ``epoch``, ``reset``, ``speed`` {value};
- ``point`` {x} or {index, split}: the BP equations there (``equations``);
  ``probe`` {x}: f(x) (``probe``); ``upload`` {name, text}: a CSV (``uploaded``);
  ``export`` {name}: a run folder in the export root (``exported``);
- ``ack`` {seq}: the page drew frame ``seq`` (and those before). While playing, the
  server keeps at most :data:`FRAMES_AHEAD` frames unacknowledged, so a slow page is
  never flooded.

Binary frames: see :func:`jaxbp.playground.session.encode_frame`. Every user mistake
becomes ``{"type": "error", "message": ...}``; the session goes on. Anything else is
logged on the server's terminal and reported as a one-line internal error. The
session is freed when its socket closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from jaxbp.data import DataError
from jaxbp.playground import datasets, export, settings
from jaxbp.playground.session import MAX_SESSIONS, Refused, Session, Sessions

STATIC = Path(__file__).parent / "static"
FRAMES_AHEAD = 2
MAX_MESSAGE_BYTES = 3 * datasets.MAX_UPLOAD_BYTES  # base text of a CSV at the upload limit
log = logging.getLogger("jaxbp.playground")
USER_ERRORS = (settings.SettingsError, DataError, Refused, ValueError, TypeError, OSError)


class Tab:
    """One WebSocket and its session: the command handlers and the play loop."""

    def __init__(self, ws: WebSocket, session: Session, export_root: Path):
        self.ws, self.session, self.export_root = ws, session, export_root
        self.lock = anyio.Lock()  # one computation at a time on this session
        self.acked_seq = 0  # the last frame the page has drawn
        self.acked = asyncio.Event()
        self.player: asyncio.Task | None = None

    async def run(self, fn, *args):
        async with self.lock:
            return await anyio.to_thread.run_sync(fn, *args)

    async def send(self, doc: dict) -> None:
        await self.ws.send_text(json.dumps(doc, allow_nan=False))

    async def frame(self, train: bool) -> None:
        await self.ws.send_bytes(await self.run(self.session.frame, train))

    async def setup(self) -> None:
        await self.send(self.session.describe())
        await self.frame(False)

    # -- the play loop -------------------------------------------------------------------
    def start(self) -> None:
        self.session.playing = True
        if self.player is None or self.player.done():
            self.player = asyncio.create_task(self._play())

    async def _play(self) -> None:
        s = self.session
        while s.playing:
            while s.seq - self.acked_seq >= FRAMES_AHEAD and s.playing:
                self.acked.clear()
                await self.acked.wait()
            if not s.playing:
                break
            try:
                await self.frame(True)
            except USER_ERRORS as err:
                s.playing = False
                await self.send({"type": "error", "message": _line(err)})
            if s.diverged is not None:
                await self.send({"type": "error", "message": f"diverged at epoch {s.diverged}: "
                                 "the last finite θ is kept; lower the learning rate or press "
                                 "reset"})  # fmt: skip
        await self.send({"type": "paused"})

    async def stop(self) -> None:
        self.session.playing = False
        if self.player is not None:
            self.player.cancel()
            try:
                await self.player
            except (asyncio.CancelledError, Exception):
                pass

    # -- commands --------------------------------------------------------------------------
    async def handle(self, msg: dict) -> None:
        kind = msg.get("type")
        s = self.session
        if kind == "ack":
            seq = msg.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                self.acked_seq = max(self.acked_seq, min(seq, s.seq))
            self.acked.set()
        elif kind == "play":
            s._check_can_train()
            self.start()
        elif kind == "pause":
            s.playing = False
            self.acked.set()
        elif kind in ("step", "epoch"):
            s.playing = False
            await self.run(s.step if kind == "step" else s.run_epoch)
            await self.frame(False)
            if s.diverged is not None:
                raise Refused(f"diverged at epoch {s.diverged}: the last finite θ is kept; "
                              "lower the learning rate or press reset")  # fmt: skip
        elif kind == "reset":
            s.playing = False
            await self.run(s.reset)
            await self.setup()
        elif kind == "speed":
            s.set_speed(msg.get("value"))
        elif kind == "settings":
            new = settings.parse(msg.get("settings"))
            was_playing, s.playing = s.playing, False
            await self.run(s.apply, new)
            await self.setup()
            if was_playing and msg.get("keep_playing"):
                self.start()
        elif kind == "point":
            x, index, split = msg.get("x"), msg.get("index"), msg.get("split", "train")
            await self.send(await self.run(s.equations_at, x, index, split))
        elif kind == "probe":
            await self.send(await self.run(s.probe, msg.get("x")))
        elif kind == "upload":
            name, text = msg.get("name"), msg.get("text")
            if not isinstance(text, str):
                raise Refused("upload: expected the file's text")
            s.upload = await anyio.to_thread.run_sync(
                datasets.read_upload, str(name), text.encode("utf-8")
            )
            await self.send({"type": "uploaded", "name": s.upload.name,
                             "columns": list(s.upload.columns)})  # fmt: skip
        elif kind == "export":
            s.playing = False
            out = await self.run(export.export, s, self.export_root, msg.get("name"))
            await self.send({"type": "exported", "path": str(out.resolve()),
                             "epoch": s.epoch})  # fmt: skip
        else:
            raise Refused(f"unknown message type {str(kind)[:40]!r}")


def _line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _same_origin(ws: WebSocket) -> bool:
    """Whether the page that opened the socket was served by this server (or no Origin).

    Browsers always send Origin on a WebSocket: this refuses other sites' pages that try
    to drive a playground on 127.0.0.1 (cross-site WebSocket hijacking).
    """
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == ws.headers.get("host")


def create_app(
    *, export_root: Path | str = "playground-runs", limit: int = MAX_SESSIONS,
    initial: dict | None = None, upload: datasets.Upload | None = None,
) -> Starlette:  # fmt: skip
    """The playground app. ``export_root``: the only folder exports are written in;
    ``limit``: the most tabs at once; ``initial``: the page's first settings (and
    ``upload``, the CSV they name)."""
    sessions = Sessions(limit)
    export_root = Path(export_root).expanduser().resolve()
    first = settings.parse(initial or {})

    async def index(request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def health(request):
        return Response(f"ok {len(sessions)} sessions", media_type="text/plain")

    async def socket(ws: WebSocket):
        if not _same_origin(ws):
            await ws.close(code=1008)
            return
        await ws.accept()
        try:
            session = await anyio.to_thread.run_sync(sessions.open, first, upload)
        except USER_ERRORS as err:
            await ws.send_text(json.dumps({"type": "error", "fatal": True, "message": _line(err)}))
            await ws.close()
            return
        tab = Tab(ws, session, export_root)
        try:
            await tab.setup()
            while True:
                raw = await ws.receive()
                if raw["type"] == "websocket.disconnect":
                    break
                await _dispatch(tab, raw.get("text"))
        except WebSocketDisconnect:
            pass
        finally:
            await tab.stop()
            sessions.close(session.id)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/health", health),
            WebSocketRoute("/ws", socket),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    app.state.sessions = sessions
    app.state.export_root = export_root
    return app


async def _dispatch(tab: Tab, text: str | None) -> None:
    """One message from the page; every failure is answered with a one-line error."""
    try:
        if text is None:
            raise Refused("expected JSON text messages")
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            raise Refused("a message was not valid JSON") from None
        if not isinstance(msg, dict):
            raise Refused("a message must be a JSON object")
        await tab.handle(msg)
    except WebSocketDisconnect:
        raise
    except USER_ERRORS as err:
        await tab.send({"type": "error", "message": _line(err)})
    except Exception as err:
        log.exception("playground: internal error")
        await tab.send({"type": "error", "message": f"internal error ({type(err).__name__}); "
                        "see the server's terminal"})  # fmt: skip


def serve(app: Starlette, host: str, port: int) -> None:
    """Run ``app`` with uvicorn until Ctrl-C (then close the sockets and return)."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", ws_max_size=MAX_MESSAGE_BYTES,
        timeout_graceful_shutdown=2, lifespan="off",
    )  # fmt: skip
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn has closed the sockets and re-raises the Ctrl-C
        pass


def wait_until_up(url: str, timeout: float = 30.0) -> bool:
    """Poll ``url`` until it answers (used by the command to open the browser)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False
