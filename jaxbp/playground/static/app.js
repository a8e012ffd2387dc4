// jaxbp playground: the page. It draws what the server computes; it trains nothing itself.
// Protocol: see jaxbp/playground/server.py. No libraries, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#1f77b4", "#e6550d", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];
const FIELDS = ["data", "noise", "n", "centers", "test_fraction", "seed", "target", "activation",
  "hidden", "head", "bias", "optimizer", "lr", "batch_size", "schedule", "epochs",
  "weight_decay", "grad"];

let ws = null;
let setup = null;        // the last "setup" message: data, shapes
let frame = null;        // the last drawn frame {header, arrays}
let pending = [];        // frames received, not drawn yet
let curves = [];         // [progress, train_loss, test_loss, train_acc, test_acc]
let selected = null;     // clicked point {x} or {index, split}
let hoverEdge = null;
let playing = false;
let lastProbe = 0;
let hoverAt = null;      // the plane point under the mouse: f(x) there is re-read while training
const initialQuery = new URLSearchParams(location.search);   // read before the page rewrites it

// ---------------------------------------------------------------------------------------
// Messages

function show(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = kind || "";
  box.hidden = !text;
}

function send(doc) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(doc));
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  let first = true;
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") {
      pending.push(parseFrame(event.data));
      requestAnimationFrame(drawPending);
      return;
    }
    const msg = JSON.parse(event.data);
    if (msg.type === "setup") {
      onSetup(msg);
      if (first) {
        first = false;
        const fromUrl = settingsFromUrl();
        if (fromUrl) send({ type: "settings", settings: fromUrl });
        const speed = initialQuery.get("speed");
        if (speed) { $("speed").value = speed; send({ type: "speed", value: speed }); }
      }
    } else if (msg.type === "error") {
      show(msg.message);
      if (msg.fatal) ws.close();
    } else if (msg.type === "paused") {
      setPlaying(false);
    } else if (msg.type === "equations") {
      drawEquations(msg);
    } else if (msg.type === "probe") {
      drawProbe(msg);
    } else if (msg.type === "uploaded") {
      fillTargets(msg.columns, msg.columns[msg.columns.length - 1]);
      $("data").value = "upload";
      show(`${msg.name}: ${msg.columns.length} columns; label column: ${$("target").value}`, "info");
      sendSettings();
    } else if (msg.type === "exported") {
      $("export-result").textContent = `saved epoch ${msg.epoch} in ${msg.path} — try: jaxbp evaluate --run ${msg.path}`;
      show("exported to " + msg.path, "info");
    }
  };
  ws.onclose = () => {
    setPlaying(false);
    show("disconnected from the playground server; restart it with `jaxbp playground` and reload");
  };
}

function parseFrame(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const base = 4 + length;
  const types = { float32: Float32Array, uint8: Uint8Array, int32: Int32Array };
  const arrays = {};
  for (const [name, [dtype, shape, offset]] of Object.entries(header.arrays)) {
    const count = shape.reduce((a, b) => a * b, 1);
    arrays[name] = { data: new types[dtype](buffer, base + offset, count), shape };
  }
  return { header, arrays };
}

function drawPending() {
  if (!pending.length) return;
  const frames = pending;
  pending = [];
  for (const f of frames) {
    if (!setup || f.header.generation !== setup.generation) continue;   // an older setup's
    if (f.header.curves_reset) curves = [];
    curves.push(...f.header.curves);
  }
  const latest = frames[frames.length - 1];
  if (setup && latest.header.generation === setup.generation) {
    frame = latest;
    drawFrame();
  }
  send({ type: "ack", seq: latest.header.seq });
}

// ---------------------------------------------------------------------------------------
// Controls

function fillSelect(id, names, value) {
  const el = $(id);
  if (el.options.length !== names.length) {
    el.innerHTML = "";
    for (const name of names) el.add(new Option(name, name));
  }
  el.value = value;
}

function fillTargets(columns, value) {
  const el = $("target");
  el.innerHTML = "";
  for (const c of columns) el.add(new Option(c, c));
  if (value !== null && value !== undefined) el.value = value;
}

function readControls() {
  const doc = {};
  for (const name of FIELDS) {
    const el = $(name);
    doc[name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return doc;
}

function writeControls(s) {
  for (const name of FIELDS) {
    const el = $(name);
    const value = s[name];
    if (el === document.activeElement && el.type === "text") continue;   // being typed in
    if (el.type === "checkbox") el.checked = !!value;
    else if (el.tagName === "SELECT" && name !== "target") el.value = value;
    else if (name !== "target") el.value = value === null || value === undefined ? "" : value;
    el.classList.remove("invalid");
  }
}

function working() {
  $("timing").textContent = "working… (a new setup compiles its functions first)";
}

function sendSettings() {
  working();
  send({ type: "settings", settings: readControls(), keep_playing: playing });
}

function settingsFromUrl() {
  const q = initialQuery;
  const doc = {};
  let any = false;
  for (const name of FIELDS) if (q.has(name)) { doc[name] = q.get(name); any = true; }
  if (!any) return null;
  if (doc.data === "upload") { show("this link used an uploaded CSV: upload the file again", "info"); delete doc.data; }
  return { ...setup.settings, ...doc, target: "" };
}

function saveUrl(s) {
  const q = new URLSearchParams();
  for (const name of FIELDS) {
    const v = s[name];
    if (v !== null && v !== undefined && v !== "") q.set(name, String(v));
  }
  q.set("speed", $("speed").value);
  history.replaceState(null, "", "?" + q.toString());
}

function setPlaying(on) {
  playing = on;
  $("play").textContent = on ? "❚❚ pause" : "▶ play";
}

function wireControls() {
  for (const name of FIELDS) {
    const el = $(name);
    el.addEventListener("change", sendSettings);
    if (el.tagName === "INPUT" && el.type === "text") {
      el.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); sendSettings(); } });
    }
  }
  $("play").addEventListener("click", () => {
    if (playing) { send({ type: "pause" }); setPlaying(false); }
    else { show(""); working(); send({ type: "play" }); setPlaying(true); }
  });
  $("step").addEventListener("click", () => { setPlaying(false); send({ type: "step" }); });
  $("epoch-button").addEventListener("click", () => { setPlaying(false); send({ type: "epoch" }); });
  $("reset").addEventListener("click", () => { setPlaying(false); show(""); send({ type: "reset" }); });
  $("speed").addEventListener("change", () => {
    send({ type: "speed", value: $("speed").value });
    if (setup) saveUrl(setup.settings);
  });
  $("point-button").addEventListener("click", () => {
    const index = Number($("point-index").value);
    selected = { index, split: "train" };
    send({ type: "point", index: Number.isInteger(index) ? index : -1, split: "train" });
    if (frame && setup.plane) drawPlane();
  });
  $("export").addEventListener("click", () => send({ type: "export", name: $("export-name").value.trim() }));
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (!file) return;
    if (file.size > 2 * 1024 * 1024) {
      show(`${file.name} is ${(file.size / 1048576).toFixed(1)} MiB; uploads are limited to 2 MiB`);
      $("file").value = "";
      return;
    }
    file.text().then((text) => send({ type: "upload", name: file.name, text }));
  });
  const plane = $("plane");
  plane.addEventListener("mousemove", onPlaneMove);
  plane.addEventListener("mouseleave", () => { hoverAt = null; $("hover").textContent = "hover the plane for f(x); click a point for the BP equations"; });
  plane.addEventListener("click", onPlaneClick);
  const net = $("network");
  net.addEventListener("mousemove", onNetworkMove);
  net.addEventListener("mouseleave", () => { hoverEdge = null; $("edge").innerHTML = "&nbsp;"; drawNetwork(); });
}

function onSetup(msg) {
  setup = msg;
  hoverAt = null;
  fillSelect("activation", msg.choices.activation, msg.settings.activation);
  fillSelect("optimizer", msg.choices.optimizer, msg.settings.optimizer);
  fillSelect("schedule", msg.choices.schedule, msg.settings.schedule);
  if (msg.upload) fillTargets(msg.upload.columns, msg.settings.target || msg.upload.columns[msg.upload.columns.length - 1]);
  writeControls(msg.settings);
  $("speed").value = msg.speed;
  document.body.className = msg.task;
  selected = null;
  curves = [];
  frame = null;
  $("equations").innerHTML = "";
  $("equations-source").textContent = "click a point or the plane";
  if (!$("export-name").dataset.touched) $("export-name").value = `${msg.name}-${Date.now().toString(36)}`;
  $("plane-panel").hidden = !msg.plane;
  $("features-panel").hidden = !msg.plane;
  $("weights-panel").hidden = msg.plane;
  $("confusion-panel").hidden = msg.plane || msg.task !== "classification";
  $("network-panel").hidden = msg.d > 16;
  $("accuracy-curve").hidden = msg.task !== "classification";
  $("plane-title").textContent = msg.task === "classification" ? "Decision regions (train: filled, test: ringed; size: ‖∇θℓᵢ‖)" :
    msg.d === 1 ? "The fitted curve f(x) (train: filled, test: ringed)" : "f(x) over the plane";
  $("features-note").textContent = msg.M > msg.maps ? `(the first ${msg.maps} of ${msg.M})` : "";
  const legend = $("legend");
  legend.innerHTML = "";
  if (msg.classes) msg.classes.forEach((c, i) => {
    const s = document.createElement("span");
    s.innerHTML = `<i style="background:${PALETTE[i % 10]}"></i>class ${c}`;
    legend.appendChild(s);
  });
  buildMaps();
  saveUrl(msg.settings);
}

// ---------------------------------------------------------------------------------------
// Frame

function fmt(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toFixed(digits);
}

function drawFrame() {
  const h = frame.header;
  $("epoch").textContent = h.progress % 1 === 0 ? h.epoch : h.progress.toFixed(2);
  $("steps").textContent = h.steps;
  $("train-loss").textContent = fmt(h.train_loss);
  $("test-loss").textContent = fmt(h.test_loss);
  if (h.test_accuracy !== undefined) {
    $("train-accuracy").textContent = h.train_accuracy.toFixed(3);
    $("test-accuracy").textContent = h.test_accuracy.toFixed(3);
  } else {
    $("test-mse").textContent = fmt(h.test_mse);
  }
  const gc = $("gradcheck");
  gc.textContent = h.gradcheck.toExponential(1);
  gc.className = h.gradcheck > setup.gradcheck_red ? "bad" : "ok";
  gc.title = h.gradcheck > setup.gradcheck_red ? "above 1e-5: the hand-written gradient and jax.grad disagree" : "hand-written BP = jax.grad";
  const t = h.timing;
  $("timing").textContent = `frame: step ${(1000 * t.step).toFixed(1)} ms, views ${(1000 * t.views).toFixed(1)} ms`;
  if (h.diverged) show(`diverged at epoch ${h.diverged}: the last finite θ is kept; lower the learning rate or press reset`);
  if (setup.plane) { drawPlane(); drawMaps(); } else { drawWeights(); drawConfusion(); }
  if (setup.d <= 16) drawNetwork();
  drawCurves();
  if (hoverEdge) showEdge(hoverEdge);
  const now = performance.now();
  if (hoverAt && setup.plane && now - lastProbe > 200) { lastProbe = now; send({ type: "probe", x: hoverAt }); }
}

// -- the plane -----------------------------------------------------------------------------

function hexRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function toCanvas(x, canvas) {   // data (standardised) → pixels
  const { lo, hi } = setup;
  if (setup.d === 1) return [(x[0] - lo[0]) / (hi[0] - lo[0]) * canvas.width, 0];
  return [(x[0] - lo[0]) / (hi[0] - lo[0]) * canvas.width, (hi[1] - x[1]) / (hi[1] - lo[1]) * canvas.height];
}

function fromCanvas(px, py, canvas) {
  const { lo, hi } = setup;
  const x1 = lo[0] + px / canvas.width * (hi[0] - lo[0]);
  if (setup.d === 1) return [x1];
  return [x1, hi[1] - py / canvas.height * (hi[1] - lo[1])];
}

let yRange = [0, 1];

function drawPlane() {
  const canvas = $("plane");
  const ctx = canvas.getContext("2d");
  const a = frame.arrays;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (setup.d === 2 && a.regions) drawRegions(ctx, canvas, a.regions);
  if (setup.d === 2 && a.fit) drawHeat(ctx, canvas, a.fit.data);
  if (setup.d === 1) { drawLine(ctx, canvas, a.fit.data); return; }
  const norms = a.norms.data;
  let max = 0;
  for (const v of norms) max = Math.max(max, v);
  const colour = (y) => setup.task === "classification" ? PALETTE[y % 10] : "#444";
  setup.X_test.forEach((x, i) => {
    const [px, py] = toCanvas(x, canvas);
    ctx.beginPath(); ctx.arc(px, py, 3.5, 0, 2 * Math.PI);
    ctx.lineWidth = 1.5; ctx.strokeStyle = colour(setup.y_test[i]); ctx.stroke();
  });
  setup.X_train.forEach((x, i) => {
    const [px, py] = toCanvas(x, canvas);
    const r = 1.5 + 6 * Math.sqrt(max > 0 ? norms[i] / max : 0);
    ctx.beginPath(); ctx.arc(px, py, r, 0, 2 * Math.PI);
    ctx.fillStyle = colour(setup.y_train[i]); ctx.fill();
    ctx.lineWidth = 0.7; ctx.strokeStyle = "#fff"; ctx.stroke();
  });
  drawSelected(ctx, canvas);
}

function drawRegions(ctx, canvas, regions) {
  const G = setup.grid, C = regions.shape[1];
  const image = ctx.createImageData(G, G);
  const rgb = PALETTE.map(hexRgb);
  for (let p = 0; p < G * G; p++) {
    let r = 0, g = 0, b = 0;
    for (let c = 0; c < C; c++) {
      const w = regions.data[p * C + c] / 255;
      r += w * rgb[c % 10][0]; g += w * rgb[c % 10][1]; b += w * rgb[c % 10][2];
    }
    image.data.set([255 - 0.55 * (255 - r), 255 - 0.55 * (255 - g), 255 - 0.55 * (255 - b), 255], 4 * p);
  }
  blit(ctx, canvas, image, G);
}

function blit(ctx, canvas, image, G) {
  const off = document.createElement("canvas");
  off.width = off.height = G;
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
}

function diverging(t) {   // t in [-1, 1] → orange (negative) … white … blue (positive)
  const [pr, pg, pb] = hexRgb("#1f77b4"), [nr, ng, nb] = hexRgb("#e6550d");
  const s = Math.min(1, Math.abs(t));
  const [r, g, b] = t >= 0 ? [pr, pg, pb] : [nr, ng, nb];
  return [255 + s * (r - 255), 255 + s * (g - 255), 255 + s * (b - 255)];
}

function drawHeat(ctx, canvas, values) {
  const G = setup.grid;
  let max = 0;
  for (const v of values) max = Math.max(max, Math.abs(v));
  const image = ctx.createImageData(G, G);
  for (let p = 0; p < G * G; p++) image.data.set([...diverging(max ? values[p] / max : 0), 255], 4 * p);
  blit(ctx, canvas, image, G);
}

function drawLine(ctx, canvas, fit) {
  const ys = [...setup.y_train, ...setup.y_test].map((y) => Array.isArray(y) ? y[0] : y);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  const pad = 0.1 * (hi - lo || 1);
  yRange = [lo - pad, hi + pad];
  const py = (y) => (yRange[1] - y) / (yRange[1] - yRange[0]) * canvas.height;
  const xs = (x) => toCanvas([x], canvas)[0];
  const point = (x, y, filled) => {
    ctx.beginPath(); ctx.arc(xs(x[0]), py(Array.isArray(y) ? y[0] : y), 2.5, 0, 2 * Math.PI);
    if (filled) { ctx.fillStyle = "#1f77b4"; ctx.fill(); } else { ctx.strokeStyle = "#e6550d"; ctx.stroke(); }
  };
  setup.X_train.forEach((x, i) => point(x, setup.y_train[i], true));
  setup.X_test.forEach((x, i) => point(x, setup.y_test[i], false));
  ctx.beginPath();
  ctx.strokeStyle = "#222"; ctx.lineWidth = 2;
  const L = setup.line, { lo: l, hi: h } = setup;
  for (let i = 0; i < L; i++) {
    const x = l[0] + i * (h[0] - l[0]) / (L - 1);
    i ? ctx.lineTo(xs(x), py(fit[i])) : ctx.moveTo(xs(x), py(fit[i]));
  }
  ctx.stroke();
  drawSelected(ctx, canvas);
}

function drawSelected(ctx, canvas) {
  if (!selected) return;
  let x = selected.x;
  if (selected.index !== undefined) x = (selected.split === "train" ? setup.X_train : setup.X_test)[selected.index];
  if (!x) return;
  let [px, py] = toCanvas(x, canvas);
  if (setup.d === 1) py = canvas.height / 2;
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(px - 7, py - 7); ctx.lineTo(px + 7, py + 7);
  ctx.moveTo(px + 7, py - 7); ctx.lineTo(px - 7, py + 7); ctx.stroke();
}

function canvasXY(event, canvas) {
  const r = canvas.getBoundingClientRect();
  return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
}

function onPlaneMove(event) {
  if (!setup || !setup.plane) return;
  const now = performance.now();
  if (now - lastProbe < 60) return;
  lastProbe = now;
  const [px, py] = canvasXY(event, $("plane"));
  hoverAt = fromCanvas(px, py, $("plane"));
  send({ type: "probe", x: hoverAt });
}

function drawProbe(msg) {
  const x = msg.x.map((v) => v.toFixed(2)).join(", ");
  let text = `x = (${x}): f(x) = ${vector(msg.f)}`;
  if (msg.probabilities) {
    const p = msg.probabilities;
    const best = p.indexOf(Math.max(...p));
    text += ` → class ${setup.classes[best]} (p = ${p[best].toFixed(3)})`;
  }
  $("hover").textContent = text;
}

function onPlaneClick(event) {
  if (!setup) return;
  const canvas = $("plane");
  const [px, py] = canvasXY(event, canvas);
  let best = null, bestD = 7 * 7;
  if (setup.d === 2) {
    for (const split of ["train", "test"]) {
      const X = split === "train" ? setup.X_train : setup.X_test;
      X.forEach((x, i) => {
        const [qx, qy] = toCanvas(x, canvas);
        const d = (qx - px) ** 2 + (qy - py) ** 2;
        if (d < bestD) { bestD = d; best = { index: i, split }; }
      });
    }
  }
  selected = best || { x: fromCanvas(px, py, canvas) };
  send({ type: "point", ...selected });
  if (frame) drawPlane();
}

// -- hidden features -----------------------------------------------------------------------

function buildMaps() {
  const box = $("features");
  box.innerHTML = "";
  if (!setup.plane) return;
  for (let j = 0; j < setup.maps; j++) {
    const div = document.createElement("div");
    div.className = "map";
    const c = document.createElement("canvas");
    c.width = c.height = 64;
    if (setup.d === 1) c.height = 40;
    const label = document.createElement("div");
    label.id = `map-label-${j}`;
    div.append(c, label);
    box.appendChild(div);
  }
}

function drawMaps() {
  const a = frame.arrays, h = frame.header;
  if (!a.maps) return;
  const [m, P] = a.maps.shape;
  const canvases = $("features").querySelectorAll("canvas");
  const W = a.W.data, K = a.W.shape[0], M = a.W.shape[1];
  for (let j = 0; j < m && j < canvases.length; j++) {
    const c = canvases[j], ctx = c.getContext("2d");
    const values = a.maps.data.subarray(j * P, (j + 1) * P);
    const lo = h.maps_lo[j], hi = h.maps_hi[j];
    if (setup.d === 1) {
      ctx.clearRect(0, 0, c.width, c.height);
      ctx.beginPath(); ctx.strokeStyle = "#1f77b4";
      for (let i = 0; i < P; i++) {
        const x = i / (P - 1) * c.width, y = c.height - 2 - values[i] / 255 * (c.height - 4);
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      }
      ctx.stroke();
    } else {
      const G = setup.feature_grid, image = ctx.createImageData(G, G);
      const span = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
      for (let p = 0; p < G * G; p++) {
        const z = lo + values[p] / 255 * (hi - lo);   // z_j(x), back from 8 bits
        image.data.set([...diverging(z / span), 255], 4 * p);
      }
      blit(ctx, c, image, G);
    }
    const w = [];
    for (let k = 0; k < K; k++) w.push(W[k * M + j]);
    $(`map-label-${j}`).textContent = `z${j + 1}: W[:, ${j + 1}] = ${vector(w, 2)}`;
  }
}

// -- d > 2: weight images and the confusion matrix ------------------------------------------

function drawWeights() {
  const a = frame.arrays, box = $("weights");
  const [M, d] = a.V.shape;
  const shown = Math.min(M, 64);
  const side = Math.round(Math.sqrt(d));
  const square = side * side === d;
  $("weights-note").textContent = (square ? `each v_j as a ${side}×${side} image` : `each v_j as a strip of ${d}`) +
    (M > shown ? `; the first ${shown} of ${M}` : "");
  if (box.children.length !== shown) {
    box.innerHTML = "";
    for (let j = 0; j < shown; j++) {
      const div = document.createElement("div");
      div.className = "map";
      const c = document.createElement("canvas");
      c.width = 64; c.height = square ? 64 : 16;
      const label = document.createElement("div");
      label.textContent = `v${j + 1}`;
      div.append(c, label);
      box.appendChild(div);
    }
  }
  const canvases = box.querySelectorAll("canvas");
  for (let j = 0; j < shown; j++) {
    const v = a.V.data.subarray(j * d, (j + 1) * d);
    let max = 0;
    for (const x of v) max = Math.max(max, Math.abs(x));
    const cw = square ? side : d, ch = square ? side : 1;
    const image = new ImageData(cw, ch);
    for (let i = 0; i < d; i++) image.data.set([...diverging(max ? v[i] / max : 0), 255], 4 * i);
    const ctx = canvases[j].getContext("2d");
    const off = document.createElement("canvas");
    off.width = cw; off.height = ch;
    off.getContext("2d").putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, canvases[j].width, canvases[j].height);
  }
}

function drawConfusion() {
  const a = frame.arrays.confusion;
  if (!a) return;
  const C = a.shape[0];
  let max = 0;
  for (const v of a.data) max = Math.max(max, v);
  let html = "<table><tr><th></th>" + setup.classes.map((c) => `<th>${c}</th>`).join("") + "</tr>";
  for (let i = 0; i < C; i++) {
    html += `<tr><th>${setup.classes[i]}</th>`;
    for (let j = 0; j < C; j++) {
      const v = a.data[i * C + j], s = max ? v / max : 0;
      const bg = i === j ? `rgba(30,132,73,${0.15 + 0.6 * s})` : v ? `rgba(192,57,43,${0.1 + 0.6 * s})` : "transparent";
      html += `<td style="background:${bg}">${v}</td>`;
    }
    html += "</tr>";
  }
  $("confusion").innerHTML = html + "</table>";
}

// -- the network diagram -------------------------------------------------------------------

function layout() {
  const canvas = $("network");
  const d = setup.d, M = setup.M, K = setup.K;
  const height = Math.max(240, Math.min(900, 14 * Math.max(d, K) + 4 * M));
  if (canvas.height !== height) canvas.height = height;
  const column = (count, x) => Array.from({ length: count }, (_, i) => [x, (i + 0.5) * canvas.height / count]);
  return { canvas, inputs: column(d, 40), hidden: column(M, canvas.width / 2), outputs: column(K, canvas.width - 40) };
}

function edges() {   // [from, to, name, value]
  const a = frame.arrays, L = layout(), list = [];
  const [M, d] = a.V.shape, K = a.W.shape[0];
  for (let j = 0; j < M; j++) for (let i = 0; i < d; i++)
    list.push([L.inputs[i], L.hidden[j], `V[${j + 1}, ${i + 1}]`, a.V.data[j * d + i]]);
  for (let k = 0; k < K; k++) for (let j = 0; j < M; j++)
    list.push([L.hidden[j], L.outputs[k], `W[${k + 1}, ${j + 1}]`, a.W.data[k * M + j]]);
  return { L, list };
}

function drawNetwork() {
  if (!frame || setup.d > 16) return;
  const { L, list } = edges();
  const ctx = L.canvas.getContext("2d");
  ctx.clearRect(0, 0, L.canvas.width, L.canvas.height);
  let max = 0;
  for (const e of list) max = Math.max(max, Math.abs(e[3]));
  for (const e of list) {
    const s = max ? Math.abs(e[3]) / max : 0;
    ctx.strokeStyle = e[3] >= 0 ? `rgba(31,119,180,${0.15 + 0.85 * s})` : `rgba(230,85,13,${0.15 + 0.85 * s})`;
    ctx.lineWidth = hoverEdge && hoverEdge[2] === e[2] ? 4 : 0.3 + 3.5 * s;
    ctx.beginPath(); ctx.moveTo(...e[0]); ctx.lineTo(...e[1]); ctx.stroke();
  }
  const node = (p, label) => {
    ctx.beginPath(); ctx.arc(p[0], p[1], setup.M > 64 ? 2 : 5, 0, 2 * Math.PI);
    ctx.fillStyle = "#fff"; ctx.fill(); ctx.strokeStyle = "#333"; ctx.lineWidth = 1; ctx.stroke();
    if (label) { ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.fillText(label, p[0] + (p[0] < 60 ? -34 : 9), p[1] + 4); }
  };
  L.inputs.forEach((p, i) => node(p, `x${i + 1}`));
  L.hidden.forEach((p) => node(p));
  L.outputs.forEach((p, k) => node(p, setup.classes && setup.K > 1 ? `f${k + 1}` : "f"));
}

function onNetworkMove(event) {
  if (!frame || setup.d > 16) return;
  const [px, py] = canvasXY(event, $("network"));
  const { list } = edges();
  let best = null, bestD = 36;
  for (const e of list) {
    const [[x1, y1], [x2, y2]] = [e[0], e[1]];
    const dx = x2 - x1, dy = y2 - y1;
    const t = Math.max(0, Math.min(1, ((px - x1) * dx + (py - y1) * dy) / (dx * dx + dy * dy)));
    const d = (x1 + t * dx - px) ** 2 + (y1 + t * dy - py) ** 2;
    if (d < bestD) { bestD = d; best = e; }
  }
  hoverEdge = best;
  if (best) showEdge(best); else $("edge").innerHTML = "&nbsp;";
  drawNetwork();
}

function showEdge(e) {
  const { list } = edges();
  const live = list.find((f) => f[2] === e[2]);
  if (live) $("edge").textContent = `${live[2]} = ${live[3].toFixed(5)}`;
}

// -- curves -------------------------------------------------------------------------------

function drawCurve(canvas, columns, fixed) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (curves.length < 1) return;
  const pad = 34;
  const xs = curves.map((c) => c[0]);
  const x0 = xs[0], x1 = Math.max(xs[xs.length - 1], x0 + 1e-9);
  let lo = fixed ? fixed[0] : Infinity, hi = fixed ? fixed[1] : -Infinity;
  if (!fixed) for (const c of curves) for (const k of columns) if (Number.isFinite(c[k])) { lo = Math.min(lo, c[k]); hi = Math.max(hi, c[k]); }
  if (!(hi > lo)) { hi = lo + 1; }
  const X = (x) => pad + (x - x0) / (x1 - x0) * (canvas.width - pad - 8);
  const Y = (y) => 6 + (hi - y) / (hi - lo) * (canvas.height - 22);
  ctx.strokeStyle = "#ccc"; ctx.lineWidth = 1;
  ctx.strokeRect(pad, 6, canvas.width - pad - 8, canvas.height - 22);
  ctx.fillStyle = "#666"; ctx.font = "10px sans-serif";
  ctx.fillText(fmt(hi, 2), 2, 14); ctx.fillText(fmt(lo, 2), 2, canvas.height - 16);
  ctx.fillText(`epoch ${fmt(x0, 1)}`, pad, canvas.height - 3);
  ctx.fillText(fmt(x1, 1), canvas.width - 40, canvas.height - 3);
  columns.forEach((k, n) => {
    ctx.beginPath();
    ctx.setLineDash(n ? [5, 3] : []);
    ctx.strokeStyle = n ? "#e6550d" : "#1f77b4"; ctx.lineWidth = 1.5;
    curves.forEach((c, i) => (i ? ctx.lineTo(X(c[0]), Y(c[k])) : ctx.moveTo(X(c[0]), Y(c[k]))));
    ctx.stroke();
  });
  ctx.setLineDash([]);
}

function drawCurves() {
  drawCurve($("loss-curve"), [1, 2]);
  if (setup.task === "classification") drawCurve($("accuracy-curve"), [3, 4], [0, 1]);
}

// -- the BP equations at a point ------------------------------------------------------------

function vector(v, digits = 4) {
  if (!Array.isArray(v)) return fmt(v, digits);
  if (Array.isArray(v[0])) {
    const rows = v.slice(0, 6).map((r) => vector(r, digits));
    return "[" + rows.join("\n ") + (v.length > 6 ? `\n  … ${v.length} rows` : "") + "]";
  }
  const shown = v.slice(0, 10).map((x) => fmt(x, digits));
  return "[" + shown.join(", ") + (v.length > 10 ? `, … (${v.length})` : "") + "]";
}

function escapeHtml(s) {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c]));
}

function drawEquations(msg) {
  $("equations-source").textContent = `${msg.source}, label y = ${msg.class !== undefined ? "class " + msg.class : vector(msg.label)}; θ after epoch ${msg.epoch}; ${msg.dtype}, like jaxbp explain`;
  let worst = 0;
  for (const r of msg.backward) worst = Math.max(worst, r.rel);
  const agree = worst <= setup.gradcheck_red;
  let html = `<h3>Forward pass (store Vx, z, Wz, f, ℓ) at x = ${escapeHtml(vector(msg.x))}, y = ${escapeHtml(vector(msg.y))}</h3><table>`;
  for (const r of msg.forward) html += `<tr><td class="title">${escapeHtml(r.title)}</td><td class="vec">${escapeHtml(vector(r.value))}</td></tr>`;
  html += "</table><h3>Backward pass: hand-written | jax.grad | largest |difference|</h3><table>";
  for (const r of msg.backward) {
    html += `<tr><td class="title">${escapeHtml(r.title)}</td><td class="vec">${escapeHtml(vector(r.hand))}</td>` +
      `<td class="vec">${escapeHtml(vector(r.oracle))}</td><td>${r.max_diff.toExponential(1)}</td></tr>`;
  }
  html += "</table>";
  html += `<p id="equations-verdict" class="${agree ? "agree" : "disagree"}" data-max-rel="${worst}">` +
    (agree ? `hand-written = jax.grad ✓ (largest relative difference ${worst.toExponential(1)})`
      : `hand-written ≠ jax.grad ✗ (relative difference ${worst.toExponential(1)})`) + "</p>";
  $("equations").innerHTML = html;
}

// ---------------------------------------------------------------------------------------

$("export-name").addEventListener("input", () => { $("export-name").dataset.touched = "1"; });
wireControls();
connect();
