"""The playground's server: session lifecycle, the WebSocket protocol, input validation.

Driven with Starlette's TestClient (no real socket, no browser). One small problem
(moons, n = 100, M = 4) throughout, so that the compiled functions are shared.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from jaxbp.playground import datasets
from jaxbp.playground.server import create_app

SMALL = {"data": "moons", "n": "100", "hidden": "4", "activation": "tanh", "lr": "0.05"}


def decode(message: bytes) -> tuple[dict, dict]:
    """A binary frame: (header, {name: array}) as the page reads it."""
    (length,) = struct.unpack("<I", message[:4])
    header = json.loads(message[4 : 4 + length])
    base = 4 + length
    assert base % 8 == 0
    arrays = {}
    for name, (dtype, shape, offset) in header["arrays"].items():
        count = int(np.prod(shape))
        arrays[name] = np.frombuffer(message, dtype, count, base + offset).reshape(shape)
    return header, arrays


@pytest.fixture
def app(tmp_path):
    return create_app(export_root=tmp_path / "exports", limit=2, initial=SMALL)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def opened(ws) -> tuple[dict, dict]:
    """The setup message and the first frame a new socket receives."""
    setup = ws.receive_json()
    assert setup["type"] == "setup"
    header, arrays = decode(ws.receive_bytes())
    return setup, (header, arrays)


def next_text(ws) -> dict:
    """The next JSON message, skipping (and acknowledging) binary frames."""
    while True:
        message = ws.receive()
        if message.get("text") is not None:
            return json.loads(message["text"])
        ws.send_json({"type": "ack", "seq": decode(message["bytes"])[0]["seq"]})


def next_frame(ws, ack: bool = True) -> tuple[dict, dict]:
    """The next binary frame (acknowledged, as the page does after drawing it)."""
    while True:
        message = ws.receive()
        if message.get("bytes") is not None:
            header, arrays = decode(message["bytes"])
            if ack:
                ws.send_json({"type": "ack", "seq": header["seq"]})
            return header, arrays


# ---------------------------------------------------------------------------------------
# Sessions


def test_a_tab_gets_a_session_that_ends_with_its_socket(client, app):
    with client.websocket_connect("/ws") as ws:
        setup, (header, arrays) = opened(ws)
        assert len(app.state.sessions) == 1
        assert setup["d"] == 2 and setup["M"] == 4 and setup["K"] == 2
        assert setup["n_train"] == 80 and len(setup["X_train"]) == 80
        assert header["epoch"] == 0 and header["steps"] == 0
        assert arrays["V"].shape == (4, 2) and arrays["regions"].shape == (64 * 64, 2)
        assert arrays["maps"].shape == (4, 32 * 32) and arrays["norms"].shape == (80,)
        assert header["gradcheck"] < 1e-5
    assert len(app.state.sessions) == 0
    assert client.get("/health").text == "ok 0 sessions"


def test_sessions_are_capped_and_freed(client, app):
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        opened(a), opened(b)
        with client.websocket_connect("/ws") as c:
            refused = c.receive_json()
            assert refused["fatal"] and "limit" in refused["message"]
            with pytest.raises(WebSocketDisconnect):
                c.receive_json()
        assert len(app.state.sessions) == 2
    assert len(app.state.sessions) == 0
    with client.websocket_connect("/ws") as d:  # a freed slot is usable again
        opened(d)


def test_two_tabs_train_independently(client):
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        opened(a), opened(b)
        a.send_json({"type": "epoch"})
        header, _ = next_frame(a)
        b.send_json({"type": "step"})
        other, _ = next_frame(b)
        assert (header["epoch"], other["epoch"], other["steps"]) == (1, 0, 1)


def test_a_page_from_another_site_is_refused(client):
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for name in ("/", "/static/app.js", "/static/style.css"):  # works offline: no CDN
        assert not re.search(r"https?://", client.get(name).text), name


# ---------------------------------------------------------------------------------------
# Protocol


def test_step_epoch_reset_and_play(client):
    with client.websocket_connect("/ws") as ws:
        opened(ws)
        ws.send_json({"type": "step"})
        header, _ = next_frame(ws)
        assert (header["steps"], header["epoch"]) == (1, 0)
        assert header["progress"] == pytest.approx(32 / 80)
        ws.send_json({"type": "epoch"})  # finishes the started epoch
        header, _ = next_frame(ws)
        assert (header["epoch"], header["steps"]) == (1, 3)
        ws.send_json({"type": "speed", "value": "2 epochs"})
        ws.send_json({"type": "play"})
        epochs = []
        for _ in range(3):
            header, _ = next_frame(ws)
            epochs.append(header["epoch"])
        ws.send_json({"type": "pause"})
        assert next_text(ws)["type"] == "paused"
        assert epochs == [3, 5, 7]
        curves = header["curves"]
        assert all(len(point) == 5 for point in curves)  # epoch, losses, accuracies
        ws.send_json({"type": "reset"})
        setup = next_text(ws)
        header, _ = next_frame(ws)
        assert setup["type"] == "setup" and header["epoch"] == 0 and header["curves_reset"]


def test_play_waits_for_the_page(client):
    """At most two frames are sent ahead of the page's acknowledgements."""
    with client.websocket_connect("/ws") as ws:
        _, (header, _) = opened(ws)
        ws.send_json({"type": "ack", "seq": header["seq"]})
        ws.send_json({"type": "speed", "value": "1 step"})
        ws.send_json({"type": "play"})
        first, _ = next_frame(ws, ack=False)
        second, _ = next_frame(ws, ack=False)
        time.sleep(0.5)
        ws.send_json({"type": "pause"})  # no ack was sent: nothing more was trained
        assert next_text(ws)["type"] == "paused"
        ws.send_json({"type": "step"})
        third, _ = next_frame(ws)
        assert (first["steps"], second["steps"], third["steps"]) == (1, 2, 3)


def test_a_clicked_point_gives_the_bp_equations(client):
    with client.websocket_connect("/ws") as ws:
        opened(ws)
        ws.send_json({"type": "point", "index": 5, "split": "train"})
        eq = next_text(ws)
        assert eq["type"] == "equations" and eq["source"] == "train point 5"
        titles = [r["title"] for r in eq["backward"]]
        assert titles[1] == "∂ℓ/∂W = δ zᵀ" and "∂ℓ/∂V = (Wᵀδ ⊙ σ′(Vx)) xᵀ" in titles
        assert [r["title"] for r in eq["forward"]][:2] == ["Vx + b", "z = σ(Vx + b)"]
        assert max(r["rel"] for r in eq["backward"]) < 1e-12  # float64, as jaxbp explain
        ws.send_json({"type": "point", "x": [0.5, -0.25]})
        eq = next_text(ws)
        assert eq["x"] == [0.5, -0.25] and "nearest train point" in eq["source"]
        ws.send_json({"type": "probe", "x": [0.5, -0.25]})
        probe = next_text(ws)
        assert sum(probe["probabilities"]) == pytest.approx(1, abs=1e-5)


def test_the_equations_are_the_library_s(client, app):
    """The panel's numbers are manual_grad's and jax.grad's at the session's θ."""
    import jax
    import jax.numpy as jnp

    from jaxbp.backprop import manual_grad
    from jaxbp.oracle import autodiff_grad

    with client.websocket_connect("/ws") as ws:
        opened(ws)
        ws.send_json({"type": "epoch"})
        next_frame(ws)
        session = next(iter(app.state.sessions._sessions.values()))
        ws.send_json({"type": "point", "index": 7, "split": "train"})
        eq = next_text(ws)
        with jax.enable_x64(True):
            p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), session.params)
            x = jnp.asarray(session.ds.X_train[7], jnp.float64)
            y = jax.nn.one_hot(session.ds.y_train[7], 2, dtype=jnp.float64)
            g = manual_grad(session.net, p64, x, y)
            oracle = autodiff_grad(session.net, p64, x, y)
        rows = {r["title"]: r for r in eq["backward"]}
        np.testing.assert_allclose(rows["∂ℓ/∂W = δ zᵀ"]["hand"], g.W, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(rows["∂ℓ/∂V = (Wᵀδ ⊙ σ′(Vx)) xᵀ"]["oracle"], oracle.V,
                                   rtol=1e-5, atol=1e-7)  # fmt: skip


# ---------------------------------------------------------------------------------------
# Validation: a message on the page, never a crash, and the session goes on


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"lr": "-1"}, "learning rate: lr must be a finite number > 0"),
        ({"lr": "fast"}, "learning rate: expected a number"),
        ({"hidden": "300"}, "width M must be between 1 and 256"),
        ({"hidden": "2.5"}, "width M: expected a whole number"),
        ({"batch_size": "0"}, "batch size"),
        ({"activation": "cosine"}, "σ: 'cosine' is not one of"),
        ({"optimizer": "lbfgs"}, "optimizer: 'lbfgs' is not one of"),
        ({"data": "blobs", "head": "logistic"}, "logistic needs 2 classes"),
        ({"data": "sine", "head": "softmax"}, "is for classes"),
        ({"noise": "-0.1"}, "noise must be >= 0"),
        ({"test_fraction": "1"}, "test fraction must be between"),
        ({"data": "upload"}, "choose a CSV file to upload first"),
        ({"weight_decay": "nan"}, "weight decay: expected a finite number"),
    ],
)
def test_bad_settings_are_refused_and_the_session_goes_on(client, change, words):
    with client.websocket_connect("/ws") as ws:
        setup, _ = opened(ws)
        ws.send_json({"type": "settings", "settings": setup["settings"] | change})
        error = next_text(ws)
        assert error["type"] == "error" and words in error["message"]
        assert "Traceback" not in error["message"] and "\n" not in error["message"]
        ws.send_json({"type": "step"})  # the previous settings still train
        header, arrays = next_frame(ws)
        assert header["steps"] == 1 and arrays["V"].shape == (4, 2)


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"type": "fly"}', "unknown message type 'fly'"),
        ('{"type": "speed", "value": "warp"}', "speed: 'warp' is not one of"),
        ('{"type": "point", "x": [1, "a"]}', "a point must be 2"),
        ('{"type": "point", "x": [1, 2, 3]}', "a point must be 2 finite numbers"),
        ('{"type": "point", "index": 999}', "no train point number 999"),
        ('{"type": "probe", "x": [NaN, 1]}', "a point must be 2 finite numbers"),
        ('{"type": "settings", "settings": 3}', "settings must be a JSON object"),
        ('{"type": "export", "name": "../../etc"}', "export name"),
        ('{"type": "export", "name": "/tmp/x"}', "export name"),
    ],
)
def test_bad_messages_get_a_one_line_error(client, message, words):
    with client.websocket_connect("/ws") as ws:
        opened(ws)
        ws.send_text(message)
        error = next_text(ws)
        assert error["type"] == "error" and words in error["message"], error
        ws.send_json({"type": "probe", "x": [0, 0]})
        assert next_text(ws)["type"] == "probe"


def test_uploads_are_read_checked_and_limited(client):
    good = "a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}\n"
                                   for i in range(60))  # fmt: skip
    with client.websocket_connect("/ws") as ws:
        setup, _ = opened(ws)
        ws.send_json({"type": "upload", "name": "mine.csv", "text": good})
        uploaded = next_text(ws)
        assert uploaded == {"type": "uploaded", "name": "mine.csv", "columns": ["a", "b", "label"]}
        ws.send_json({"type": "settings", "settings": setup["settings"] | {"data": "upload"}})
        setup = next_text(ws)
        assert setup["type"] == "setup" and setup["classes"] == ["no", "yes"]
        assert setup["n_train"] == 48
        text_feature = good.replace("1,3,yes", "one,3,yes", 1)
        ws.send_json({"type": "upload", "name": "bad.csv", "text": text_feature})
        next_text(ws)
        ws.send_json({"type": "settings", "settings": setup["settings"]})
        error = next_text(ws)
        assert "bad.csv, line" in error["message"] and "must be numeric" in error["message"]
        assert "/proc/" not in error["message"]
        huge = "a,b\n" + "1,2\n" * (datasets.MAX_UPLOAD_BYTES // 4 + 1)
        ws.send_json({"type": "upload", "name": "huge.csv", "text": huge})
        error = next_text(ws)
        assert "uploads are limited to 2 MiB" in error["message"]
        ws.send_json({"type": "step"})
        header, _ = next_frame(ws)
        assert header["steps"] == 1


def test_divergence_stops_and_keeps_the_last_finite_theta(client, app):
    with client.websocket_connect("/ws") as ws:
        setup, _ = opened(ws)
        ws.send_json({"type": "epoch"})
        _, _before = next_frame(ws)
        wild = setup["settings"] | {"optimizer": "sgd", "lr": "1e30", "activation": "relu"}
        ws.send_json({"type": "settings", "settings": wild})
        next_text(ws)
        _, start = next_frame(ws)
        ws.send_json({"type": "epoch"})
        header, arrays = next_frame(ws)
        error = next_text(ws)
        assert error["message"].startswith("diverged at epoch 1")
        assert header["diverged"] == 1 and header["epoch"] == 0
        assert np.isfinite(arrays["V"]).all()
        np.testing.assert_array_equal(arrays["V"], start["V"])
        ws.send_json({"type": "play"})
        assert next_text(ws)["message"].startswith("diverged at epoch 1")


# ---------------------------------------------------------------------------------------
# Export


def test_export_writes_a_run_folder_that_evaluate_reads(client, app, capsys):
    from jaxbp.cli import main

    with client.websocket_connect("/ws") as ws:
        opened(ws)
        for _ in range(3):
            ws.send_json({"type": "epoch"})
            header, _ = next_frame(ws)
        ws.send_json({"type": "export", "name": "run-1"})
        done = next_text(ws)
        assert done["type"] == "exported" and done["epoch"] == 3
        ws.send_json({"type": "export", "name": "run-1"})
        assert "already exists" in next_text(ws)["message"]
    root = app.state.export_root
    run = root / "run-1"
    assert done["path"] == str(run)
    assert sorted(p.name for p in root.iterdir()) == ["run-1"]
    assert {p.name for p in run.iterdir()} == {
        "config.json", "checkpoint.npz", "history.json", "history.csv", "data.csv",
        "manifest.json",
    }  # fmt: skip
    manifest = json.loads((run / "manifest.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert manifest["run_id"] == config["run_id"] and config["fingerprint"].startswith("sha256:")
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run)]) == 0
    shown = capsys.readouterr().out
    assert f"loss      {header['test_loss']:.4f}" in shown
    assert f"accuracy  {100 * header['test_accuracy']:.2f}%" in shown
    assert main(["predict", "--run", str(run), "--input", str(run / "data.csv")]) == 0
    predictions = capsys.readouterr().out.splitlines()
    assert predictions[0] == "prediction" and len(predictions) == 101
    assert main(["train", "--resume", str(run), "--epochs", "5", "--quiet"]) == 0
    assert "epochs               5 of 5" in capsys.readouterr().out


def test_export_never_writes_outside_its_folder(client, app, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    app.state.export_root.mkdir(parents=True)
    (app.state.export_root / "link").symlink_to(elsewhere)
    with client.websocket_connect("/ws") as ws:
        opened(ws)
        ws.send_json({"type": "export", "name": "link"})
        assert "symbolic link" in next_text(ws)["message"]
    assert list(elsewhere.iterdir()) == []


def test_export_refuses_a_split_that_evaluate_cannot_reload(client):
    with client.websocket_connect("/ws") as ws:
        setup, _ = opened(ws)
        ws.send_json({"type": "settings", "settings": setup["settings"] | {"test_fraction": "0.3"}})
        next_text(ws)
        ws.send_json({"type": "export", "name": "run-2"})
        assert "needs the 20 % test split" in next_text(ws)["message"]


# ---------------------------------------------------------------------------------------
# Imports


def test_jaxbp_and_its_help_import_no_web_server():
    code = (
        "import sys, contextlib, io, jaxbp, jaxbp.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    jaxbp.cli.parser().parse_args(['playground', '--help']) if False else None\n"
        "    try: jaxbp.cli.main(['--help'])\n"
        "    except SystemExit: pass\n"
        "    try: jaxbp.cli.main(['playground', '--help'])\n"
        "    except SystemExit: pass\n"
        "bad = [m for m in ('starlette', 'uvicorn', 'websockets', 'jax') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------
# The command


def _start(*flags: str) -> tuple[subprocess.Popen, str]:
    """``jaxbp playground --no-browser --port 0 FLAGS`` and the URL it prints."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxbp.cli", "playground", "--no-browser", "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    lines, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        found = re.search(r"serving on (http://[\d.]+:\d+/)", line)
        if found:
            return proc, found.group(1), lines
        if not line and proc.poll() is not None:
            break
    _kill(proc)
    raise AssertionError(f"the server did not start: {''.join(lines)}")


def _interrupt(proc: subprocess.Popen) -> str:
    """Ctrl-C, then the rest of the output; the process must end within 20 s."""
    import os
    import signal

    os.killpg(proc.pid, signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        raise AssertionError("Ctrl-C did not stop the server within 20 s") from None
    return rest


def test_ctrl_c_stops_the_server_while_a_tab_trains(tmp_path):
    from websockets.sync.client import connect

    proc, url, _ = _start("--export-dir", str(tmp_path))
    try:
        assert url.startswith("http://127.0.0.1:")
        with connect(url.replace("http", "ws") + "ws", open_timeout=30) as ws:
            assert json.loads(ws.recv(timeout=60))["type"] == "setup"
            ws.recv(timeout=30)
            ws.send(json.dumps({"type": "play"}))  # stopped while training
            for _ in range(3):
                frame = ws.recv(timeout=60)
                ws.send(json.dumps({"type": "ack", "seq": decode(frame)[0]["seq"]}))
            rest = _interrupt(proc)
    finally:
        _kill(proc)
    assert proc.returncode == 130, rest  # like every jaxbp command: Ctrl-C is never swallowed
    assert "stopped" in rest and "Traceback" not in rest
    assert list(tmp_path.iterdir()) == []  # nothing written without an export


def test_another_host_is_served_with_a_warning():
    proc, url, lines = _start("--host", "127.0.0.2")
    try:
        rest = _interrupt(proc)
    finally:
        _kill(proc)
    assert url.startswith("http://127.0.0.2:")
    assert any("warning: listening on 127.0.0.2" in line for line in [*lines, rest])


def _kill(proc: subprocess.Popen) -> None:
    """Stop the server's process group if it still runs (a failed test leaves nothing)."""
    import os
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    if proc.stdout and not proc.stdout.closed:
        proc.stdout.close()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--data", "nope"], "data set: 'nope' is not one of"),
        (["--data", "{tmp}/missing.csv"], "no such file"),
        (["--data", "{tmp}/short.csv"], "short.csv: needs at least 4 data rows"),
    ],
)
def test_a_bad_first_data_set_is_one_line_before_serving(tmp_path, capsys, flags, words):
    from jaxbp.cli import main

    (tmp_path / "short.csv").write_text("a,b\n1,x\n")
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    assert main(["playground", "--no-browser", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxbp playground: error: ") and words in err and err.count("\n") == 1
