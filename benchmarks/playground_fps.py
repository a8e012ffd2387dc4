"""Frames per second of ``jaxbp playground`` while training: M = 256 on 2-D data.

    python benchmarks/playground_fps.py [--seconds 10] [--repeats 5] [--json FILE]

Two measurements, each after compilation:

- ``session``: ``Session.frame(train=True)`` in-process, the server's whole work per
  frame, broken into ``step`` (the optimizer steps of one frame: the compiled epoch or
  single steps, waited for), ``views`` (every view: ONE jitted function over the fixed
  grids, copied to the host) and ``encode`` (the binary message). Medians over
  ``--repeats`` interleaved rounds of 40 frames per speed.
- ``server``: the real thing: ``jaxbp playground`` in a subprocess on 127.0.0.1, a
  WebSocket client that plays and acknowledges every frame at once (as a page that
  draws instantly), frames received per second over ``--seconds``.

Speeds: one optimizer step per frame (``1 step``) and one epoch (``1 epoch``: 25
steps of 32 on the 800 training points of ``spirals``). Goal: >= 20 frames per second
on 2 CPU cores. Prints a table, names the CPU, writes JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import cpu_model, write_json  # noqa: E402

SETTINGS = {"data": "spirals", "hidden": "256", "activation": "tanh", "optimizer": "adam",
            "lr": "0.01", "batch_size": "32"}  # fmt: skip
SPEEDS = ("1 step", "1 epoch")
GOAL_FPS = 20.0
FRAMES_PER_ROUND = 40


def session_rounds(repeats: int) -> dict:
    """Per speed: per-frame seconds of step, views, encode and total (medians per round)."""
    from jaxbp.playground import settings
    from jaxbp.playground.session import Session

    session = Session("bench", settings.parse(SETTINGS))
    for speed in SPEEDS:  # compile everything first
        session.set_speed(speed)
        for _ in range(3):
            session.frame(True)
    rounds = {speed: [] for speed in SPEEDS}
    for r in range(repeats):
        for speed in SPEEDS if r % 2 == 0 else SPEEDS[::-1]:  # interleaved, order alternating
            session.set_speed(speed)
            parts = {"step": [], "views": [], "encode": [], "total": []}
            for _ in range(FRAMES_PER_ROUND):
                t = time.perf_counter()
                session.frame(True)
                parts["total"].append(time.perf_counter() - t)
                for name in ("step", "views", "encode"):
                    parts[name].append(session.timing[name])
            rounds[speed].append({k: statistics.median(v) for k, v in parts.items()})
    return {
        speed: {k: statistics.median(r[k] for r in rs) for k in rs[0]} | {"rounds": rs}
        for speed, rs in rounds.items()
    }


def server_fps(seconds: float) -> dict:
    """Frames per second received from a real server, per speed, by a client that acks at once."""
    from websockets.sync.client import connect

    scratch = tempfile.TemporaryDirectory()  # --export-dir: nothing is exported here
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxbp.cli", "playground", "--no-browser", "--port", "0",
         "--export-dir", scratch.name],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            found = re.search(r"serving on http://([\d.]+:\d+)/", proc.stdout.readline())
            url = found and found.group(1)
        if url is None:
            raise RuntimeError("the playground server did not start")
        out = {}
        with connect(f"ws://{url}/ws", open_timeout=60, max_size=2**24) as ws:
            ws.send(json.dumps({"type": "settings", "settings": SETTINGS}))
            for speed in SPEEDS:
                ws.send(json.dumps({"type": "speed", "value": speed}))
                ws.send(json.dumps({"type": "play"}))
                # warm-up (compilation included): the first 3 s and at least 30 frames
                frames, start, counting, seen = 0, None, time.monotonic() + 3, 0
                while True:
                    message = ws.recv(timeout=60)
                    if isinstance(message, str):
                        continue
                    (length,) = struct.unpack("<I", message[:4])
                    seq = json.loads(message[4 : 4 + length])["seq"]
                    ws.send(json.dumps({"type": "ack", "seq": seq}))
                    now, seen = time.monotonic(), seen + 1
                    if now >= counting and seen > 30:
                        if start is None:
                            start = now
                        else:
                            frames += 1
                        if now - start >= seconds:
                            break
                ws.send(json.dumps({"type": "pause"}))
                out[speed] = {
                    "frames": frames,
                    "seconds": now - start,
                    "fps": frames / (now - start),
                }
                while True:  # drain to the "paused" message
                    message = ws.recv(timeout=30)
                    if isinstance(message, str) and json.loads(message)["type"] == "paused":
                        break
        return out
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stdout.close()
        scratch.cleanup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="server timing per speed")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved in-process rounds")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    args = parser.parse_args(argv)
    session = session_rounds(args.repeats)
    server = server_fps(args.seconds)
    cpu = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"jaxbp playground, spirals (800 train), M=256, tanh, Adam, batch 32; {cpu}, {cores} cores"
    )
    print(f"{'speed':<9} {'step ms':>8} {'views ms':>9} {'encode ms':>10} {'frame ms':>9} "
          f"{'fps (in-process)':>17} {'fps (server)':>13}")  # fmt: skip
    rows = {}
    for speed in SPEEDS:
        s = session[speed]
        fps = 1 / s["total"]
        rows[speed] = {
            "step_ms": 1000 * s["step"], "views_ms": 1000 * s["views"],
            "encode_ms": 1000 * s["encode"], "frame_ms": 1000 * s["total"],
            "fps_in_process": fps, "fps_server": server[speed]["fps"],
            "meets_goal": server[speed]["fps"] >= GOAL_FPS,
        }  # fmt: skip
        r = rows[speed]
        print(f"{speed:<9} {r['step_ms']:>8.2f} {r['views_ms']:>9.2f} {r['encode_ms']:>10.2f} "
              f"{r['frame_ms']:>9.2f} {fps:>17.0f} {r['fps_server']:>13.0f}")  # fmt: skip
    print(f"goal: >= {GOAL_FPS:.0f} frames per second from the server while training")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = args.json or ROOT / "benchmarks" / "results" / f"playground_fps-{stamp}.json"
    write_json(path, {
        "schema": "jaxbp-bench-playground-fps/1", "cpu": cpu, "cores": cores,
        "settings": SETTINGS, "goal_fps": GOAL_FPS, "rows": rows,
        "session": session, "server": server, "frames_per_round": FRAMES_PER_ROUND,
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
