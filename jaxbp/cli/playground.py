"""``jaxbp playground``: start the local web app and open it in the browser.

The web server (Starlette, uvicorn) is imported here, when the command runs, never by
``import jaxbp`` or ``jaxbp --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jaxbp.cli.parser import int_in, positive_int

LOCAL = "127.0.0.1"


def add_arguments(sub) -> None:
    """The ``playground`` subcommand's flags."""
    p = sub.add_parser(
        "playground",
        help="train the network live in the browser, with the BP equations on any point",
        description="Start a local web page that trains f(x) = h(W σ(Vx)) with the "
        "hand-written BP and draws it live: decision regions, hidden features z_j, the "
        "network, curves, and the BP equations at any clicked point. Needs the server "
        "packages: pip install 'jaxbp[playground]'.",
    )
    p.add_argument("--data", help="first data set: a name (spirals, moons, ...) or a .csv file")
    p.add_argument("--target", help="the label column of a --data CSV (default: the last)")
    p.add_argument(
        "--port", type=int_in(0, 65535), default=8765, help="port (default 8765; 0: any free)"
    )
    p.add_argument(
        "--host",
        default=None,
        help=f"address to listen on (default {LOCAL}: this computer only). Another address "
        "lets other computers drive the server and write exports: a warning is printed",
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--export-dir",
        default="playground-runs",
        metavar="DIR",
        help="the only folder that Export writes run folders in (default ./playground-runs)",
    )
    p.add_argument(
        "--max-sessions", type=positive_int, default=8, metavar="N", help="most tabs at once (8)"
    )


def _initial(args) -> tuple[dict, object]:
    """The first settings and an uploaded CSV from --data/--target."""
    from jaxbp.playground import datasets

    if args.data is None:
        return {}, None
    if Path(args.data).suffix.lower() != ".csv":
        return {"data": args.data}, None
    path = Path(args.data).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--data {args.data}: no such file")
    upload = datasets.read_upload(path.name, path.read_bytes())
    return {"data": "upload", "target": args.target or ""}, upload


def run(args) -> int:
    """``jaxbp playground``: serve until Ctrl-C."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print(
            "jaxbp playground: error: the web server packages are missing; install them with "
            "pip install 'jaxbp[playground]' (starlette, uvicorn, websockets)",
            file=sys.stderr,
        )
        return 2
    import socket
    import threading
    import webbrowser

    from jaxbp.playground import server, settings

    host = args.host or LOCAL
    if args.host is not None and args.host not in (LOCAL, "localhost", "::1"):
        print(
            f"jaxbp playground: warning: listening on {host}: anyone who can reach this "
            "address can train here and write exports into "
            f"{Path(args.export_dir).resolve()}",
            file=sys.stderr,
        )
    initial, upload = _initial(args)
    from jaxbp.playground import datasets

    first = settings.parse(initial)  # a bad --data or CSV fails here, as a one-line error
    ds, _ = datasets.load(first, upload)
    first.run.with_data(ds)
    app = server.create_app(export_root=args.export_dir, limit=args.max_sessions,
                            initial=initial, upload=upload)  # fmt: skip
    port = args.port
    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"

    def announce_when_up():  # the URL is printed once the server answers on it
        if server.wait_until_up(url + "health"):
            print(f"jaxbp playground: serving on {url} (Ctrl-C stops)", flush=True)
            if not args.no_browser:
                webbrowser.open(url)

    threading.Thread(target=announce_when_up, daemon=True).start()
    server.serve(app, host, port)
    print("jaxbp playground: stopped", file=sys.stderr)
    return 0
