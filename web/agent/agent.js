"use strict";
// The agent console: login, queue, call with zoom, capture, torch, instructions, decision;
// the document tools' panels are in tools.js, the decision in decide.js, the in-call
// code in calltan.js.
const $ = (id) => document.getElementById(id);
const t = I18N.t;
const desk = {
  ws: null, pc: null, csrf: "", agent: null, caseInfo: null, torch: null, snapshots: [],
  zoom: 1, panX: 0, panY: 0, lastStats: null, statsTimer: 0, queueTimer: 0, selfStream: null,
  closing: false, retries: 0, analyses: [], hologram: null, quality: null, qualityTimer: 0,
  lastResult: null, error: null, refusal: null};

// --- HTTP and socket ------------------------------------------------------------------

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": desk.csrf},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error("api"), {api: data.error || {code: "other", message: response.statusText}});
  return data;
}

function errorText(error) {
  if (error.code === "too_many_attempts") return t("error.too_many_attempts", {s: error.retry_after || 60});
  const key = `error.${error.code}`;
  return t(key) === key ? (error.message || error.code) : t(key);
}

// the banner's message is kept as what to render ({key, vars} or a server {error}),
// so that a language switch shows it in the new language; null hides it
function deskError(message) {
  desk.error = message || null;
  const text = !message ? "" : message.error ? errorText(message.error) : t(message.key, message.vars);
  $("desk-error").textContent = text;
  $("desk-error").hidden = !text;
}

function send(message) {
  if (desk.ws && desk.ws.readyState === WebSocket.OPEN) desk.ws.send(JSON.stringify(message));
}

function openSocket() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/agent`);
  desk.ws = ws;
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onopen = () => { desk.retries = 0; deskError(null); };
  ws.onclose = () => {
    if (ws !== desk.ws || desk.closing) return;
    // the server ends our call when the socket goes; show the queue and retry
    endCallView();
    deskError({key: "error.socket"});
    setTimeout(openSocket, Math.min(8000, 500 * 2 ** desk.retries++));
  };
}

// --- login ----------------------------------------------------------------------------

async function loggedIn(me) {
  desk.csrf = me.csrf;
  desk.agent = me.agent;
  $("who").textContent = me.agent.name;
  $("login-view").hidden = true;
  $("desk").hidden = false;
  $("logout").hidden = false;
  $("help-open").hidden = false;
  desk.closing = false;
  openSocket();
  refreshQueue();
  desk.queueTimer = setInterval(refreshQueue, 2000);
  $("take-next").focus();
}

async function login(event) {
  event.preventDefault();
  $("login-error").hidden = true;
  $("login-submit").disabled = true;
  try {
    await loggedIn(await api("/agent/api/login", {
      name: $("login-name").value.trim(), password: $("login-password").value,
    }));
    $("login-password").value = "";
  } catch (err) {
    $("login-error").textContent = err.api ? errorText(err.api) : String(err);
    $("login-error").hidden = false;
    $("login-password").select();
  } finally {
    $("login-submit").disabled = false;
  }
}

async function logout() {
  if (desk.caseInfo && !confirm(t("hangup.confirm"))) return;
  desk.closing = true;
  clearInterval(desk.queueTimer);
  if (desk.ws) desk.ws.close();
  endCallView();
  try { await api("/agent/api/logout", {}); } catch (err) { /* already gone */ }
  desk.csrf = "";
  $("desk").hidden = true;
  $("logout").hidden = true;
  $("help-open").hidden = true;
  $("queue-badge").hidden = true;
  $("who").textContent = "";
  $("login-view").hidden = false;
  $("login-name").focus();
}

// --- the queue ------------------------------------------------------------------------

function duration(seconds) {
  const m = Math.floor(seconds / 60), s = seconds % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

async function refreshQueue() {
  let data;
  try { data = await api("/agent/api/queue/waiting"); } catch (err) {
    if (err.api && err.api.code === "not_logged_in") logout();
    return;
  }
  const rows = data.waiting.map((item) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of [[item.position], [item.case_id.slice(0, 8)], [item.reference || "–"],
      [duration(item.waiting_s), item.waiting_s > 300 ? "long" : ""]]) {
      const td = document.createElement("td");
      td.textContent = String(text);
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  });
  $("queue-list").replaceChildren(...rows);
  $("queue-empty").hidden = rows.length > 0;
  $("queue-badge").hidden = false;
  $("queue-badge").textContent = t("queue.badge", {n: rows.length});
}

// --- messages -------------------------------------------------------------------------

function onMessage(msg) {
  switch (msg.type) {
    case "hello": break;
    case "case": startCase(msg.case); break;
    case "queue_empty": showLastResult(msg); break;
    case "answer": if (desk.pc) desk.pc.setRemoteDescription({type: "answer", sdp: msg.sdp}); break;
    case "snapshot": addSnapshot(msg); break;
    case "torch_state": showTorch(msg); break;
    case "quality": showQuality(msg); break;
    case "analysis": addAnalysis(msg); break;
    case "hologram_started": desk.hologram = {running: true, ...msg}; renderHologram(); break;
    case "hologram": desk.hologram = msg; renderHologram(); break;
    case "call_tan": showCallTan(msg); break;
    case "phone_connection":
      phoneState(msg.state === "connected" ? "ok" : msg.state === "failed" ? "bad" : "warn",
        msg.state === "connected" ? "phone.connected" : msg.state === "failed" ? "phone.failed" : "phone.connecting");
      break;
    case "phone_left": phoneState("bad", "phone.left"); break;
    case "phone_rejoined": phoneState("warn", "phone.rejoined"); break;
    case "decided":
    case "hung_up":
    case "call_lost":
    case "case_withdrawn":
      endCallView();
      deskError(null);  // what went wrong in the call is over with it
      showLastResult(msg);
      break;
    case "error":
      if (msg.error.code === "challenge_running" && desk.hologram && desk.hologram.running) break;
      deskError({error: msg.error});
      if (DOCUMENT_REFUSALS.includes(msg.error.code)) documentRefused(msg.error.code);
      break;
  }
}

// the line over the queue about the last case, kept as its message for a relabel
function showLastResult(msg) {
  desk.lastResult = msg;
  $("last-result").hidden = !msg;
  if (!msg) return;
  const vars = {id: (msg.case_id || "").slice(0, 8), decision: t(`decision.${msg.decision}`),
    reason: t(`reason.${msg.reason}`)};  // the last two only for "decided"
  $("last-result").textContent = t(msg.type === "queue_empty" ? "queue.nobody" : msg.type, vars);
}

// --- the call -------------------------------------------------------------------------

function startCase(info) {
  desk.caseInfo = info;
  desk.snapshots = [];
  desk.analyses = [];
  desk.hologram = null;
  showQuality(null);
  renderAnalyses();
  renderHologram();
  desk.torch = null;
  deskError(null);
  resetDecision();
  showLastResult(null);
  $("queue-view").hidden = true;
  $("call-view").hidden = false;
  renderCase();
  renderGallery();
  renderChecklist();
  showCallTan(null);
  showTorch(null);
  setZoom(1, 0, 0);
  phoneState("warn", "phone.waiting");
  connectMedia();
  $("stage").focus();
}

function renderCase() {
  const info = desk.caseInfo;
  if (!info) return;
  const id = info.identity || {};
  const rows = [["case.id", info.id], ["case.reference", info.reference || "–"],
    ["case.given", id.given_names], ["case.surname", id.surname], ["case.birth", id.birth_date],
    ["case.locale", info.locale]];
  const items = [];
  for (const [key, value] of rows) {
    const dt = document.createElement("dt"); dt.textContent = t(key);
    const dd = document.createElement("dd"); dd.textContent = value || "–";
    items.push(dt, dd);
  }
  $("case-data").replaceChildren(...items);
}

async function agentCamera() {
  // the user sees the agent; a desk without a camera still receives
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: {width: {ideal: 640}, height: {ideal: 360}, frameRate: {ideal: 15}}, audio: true,
    });
  } catch (err) {
    return null;
  }
}

async function connectMedia() {
  const pc = new RTCPeerConnection();
  desk.pc = pc;
  desk.selfStream = await agentCamera();
  if (pc !== desk.pc) return;
  if (desk.selfStream) {
    desk.selfStream.getTracks().forEach((track) => pc.addTrack(track, desk.selfStream));
    $("self").srcObject = desk.selfStream;
  } else {
    pc.addTransceiver("video", {direction: "recvonly"});
    pc.addTransceiver("audio", {direction: "recvonly"});
  }
  pc.ontrack = (event) => {
    const video = $("video");
    if (!video.srcObject) video.srcObject = new MediaStream();
    video.srcObject.addTrack(event.track);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, 3000);
  });
  send({type: "offer", sdp: pc.localDescription.sdp});
  desk.lastStats = null;
  clearInterval(desk.statsTimer);
  desk.statsTimer = setInterval(updateStats, 1000);
}

function endCallView() {
  clearInterval(desk.statsTimer);
  if (desk.pc) desk.pc.close();
  desk.pc = null;
  if (desk.selfStream) desk.selfStream.getTracks().forEach((track) => track.stop());
  desk.selfStream = null;
  $("video").srcObject = null;
  $("self").srcObject = null;
  desk.caseInfo = null;
  showQuality(null);
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  $("call-view").hidden = true;
  $("queue-view").hidden = false;
  refreshQueue();
}

function phoneState(level, key) {
  const box = $("phone-state");
  box.dataset.state = level;
  box.dataset.key = key;
  box.textContent = t(key);
}

async function updateStats() {
  if (!desk.pc) return;
  const report = await desk.pc.getStats();
  let video = null, pair = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") video = s;
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
  });
  if (!video) return;
  const last = desk.lastStats;
  if (video.frameWidth) $("stat-resolution").textContent = `${video.frameWidth}×${video.frameHeight}`;
  if (video.framesPerSecond !== undefined) $("stat-fps").textContent = String(Math.round(video.framesPerSecond));
  if (last) {
    const seconds = (video.timestamp - last.timestamp) / 1000;
    const kbit = seconds > 0 ? ((video.bytesReceived - last.bytesReceived) * 8) / seconds / 1000 : 0;
    $("stat-bitrate").textContent = kbit >= 1000 ? `${(kbit / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbit)} kbit/s`;
    const lost = (video.packetsLost || 0) - (last.packetsLost || 0);
    const got = (video.packetsReceived || 0) - (last.packetsReceived || 0);
    $("stat-loss").textContent = `${(lost + got > 0 ? (100 * Math.max(0, lost)) / (lost + got) : 0).toFixed(1)} %`;
  }
  if (pair && pair.currentRoundTripTime !== undefined) {
    $("stat-rtt").textContent = `${Math.round(pair.currentRoundTripTime * 1000)} ms`;
  }
  desk.lastStats = video;
}

// --- capture, torch, instructions -----------------------------------------------------

function capture(kind) { if (desk.caseInfo) send({type: "capture", kind}); }

function addSnapshot(msg) {
  desk.snapshots.push(msg);
  renderGallery();
}

function renderGallery() {
  if (!desk.snapshots.length) {
    const p = document.createElement("p");
    p.className = "muted"; p.textContent = t("gallery.none");
    $("gallery").replaceChildren(p);
    return;
  }
  $("gallery").replaceChildren(...desk.snapshots.map((snap, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.kind = snap.kind;
    const label = `${t(`kind.${snap.kind}`)} ${snap.width}×${snap.height}`;
    button.setAttribute("aria-label", label);
    const img = document.createElement("img");
    img.src = snap.url; img.alt = label; img.loading = "lazy";
    const span = document.createElement("span"); span.textContent = label;
    button.append(img, span);
    button.addEventListener("click", () => openViewer(i));
    return button;
  }));
}

function openViewer(index) {
  const snap = desk.snapshots[index];
  openImage(`${t(`kind.${snap.kind}`)} – ${snap.width}×${snap.height}`, snap.url);
}

function openImage(title, url) {
  $("viewer-title").textContent = title;
  $("viewer-img").src = url;
  $("viewer-img").alt = title;
  $("viewer").showModal();
}

function toggleTorch() {
  if (!desk.caseInfo) return;
  const on = !(desk.torch && desk.torch.on);
  send({type: "torch", on});
}

function showTorch(msg) {
  desk.torch = msg;
  const box = $("torch-state");
  let key = "torch.unknown", state = "unknown";
  if (msg && !msg.available) { key = "torch.none"; state = "none"; }
  else if (msg) { key = msg.on ? "torch.on" : "torch.off"; state = msg.on ? "on" : "off"; }
  box.dataset.state = state;
  box.dataset.key = key;
  box.textContent = t(key);
  $("torch-toggle").setAttribute("aria-pressed", String(Boolean(msg && msg.on)));
}

function renderInstructions() {
  $("instructions").replaceChildren(...INSTRUCTION_KEYS.map((key, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.instruction = key;
    const label = document.createElement("span"); label.textContent = t(`instruction.${key}`);
    const kbd = document.createElement("kbd"); kbd.textContent = String(i + 1);
    button.append(label, kbd);
    button.addEventListener("click", () => instruct(key));
    return button;
  }));
}

function instruct(key, text) {
  if (!desk.caseInfo) return;
  send({type: "instruction", key, text: text || ""});
  for (const b of $("instructions").querySelectorAll("button")) b.classList.toggle("sent", b.dataset.instruction === key);
}

function renderChecklist() {
  $("checklist").replaceChildren(...CHECKS.map((key) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.name = key;
    const span = document.createElement("span"); span.textContent = t(`check.${key}`);
    label.append(box, span);
    return label;
  }));
  syncTanCheck();
}

// --- zoom and pan: the picture is scaled in the page; captures stay full frame ---------

function setZoom(zoom, x, y) {
  desk.zoom = Math.min(6, Math.max(1, zoom));
  const limit = 50 * (1 - 1 / desk.zoom);  // percent of the frame that may leave the stage
  desk.panX = Math.min(limit, Math.max(-limit, x));
  desk.panY = Math.min(limit, Math.max(-limit, y));
  // the outline has the video's box and aspect, so the same transform keeps it on the card
  const transform = `scale(${desk.zoom}) translate(${desk.panX}%, ${desk.panY}%)`;
  $("video").style.transform = transform;
  $("outline").style.transform = transform;
  $("zoom-level").textContent = `${desk.zoom.toFixed(1)}×`;
}

function setupStage() {
  const stage = $("stage");
  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    setZoom(desk.zoom * (event.deltaY < 0 ? 1.15 : 1 / 1.15), desk.panX, desk.panY);
  }, {passive: false});
  let drag = null;
  stage.addEventListener("pointerdown", (event) => {
    if (event.target.closest("button")) return;
    drag = {x: event.clientX, y: event.clientY, panX: desk.panX, panY: desk.panY};
    stage.setPointerCapture(event.pointerId);
    stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const rect = stage.getBoundingClientRect();
    const dx = ((event.clientX - drag.x) / rect.width) * 100 / desk.zoom;
    const dy = ((event.clientY - drag.y) / rect.height) * 100 / desk.zoom;
    setZoom(desk.zoom, drag.panX + dx, drag.panY + dy);
  });
  const stop = () => { drag = null; stage.classList.remove("dragging"); };
  stage.addEventListener("pointerup", stop);
  stage.addEventListener("pointercancel", stop);
  $("zoom-in").addEventListener("click", () => setZoom(desk.zoom * 1.25, desk.panX, desk.panY));
  $("zoom-out").addEventListener("click", () => setZoom(desk.zoom / 1.25, desk.panX, desk.panY));
  $("zoom-reset").addEventListener("click", () => setZoom(1, 0, 0));
}

function hangup() {
  if (desk.caseInfo && confirm(t("hangup.confirm"))) send({type: "hangup"});
}

// --- keyboard -------------------------------------------------------------------------

const KEYS = [["F B G", "key.capture"], ["T", "key.torch"], ["L", "key.hologram"], ["N", "key.next"], ["D", "key.decide"],
  ["H", "key.hangup"], ["+ − 0", "key.zoom"], ["← ↑ → ↓", "key.pan"], ["1–8", "key.instr"],
  ["C", "key.calltan"], ["?", "key.help"]];

function renderHelp() {
  $("help-keys").replaceChildren(...KEYS.map(([keys, label]) => {
    const tr = document.createElement("tr");
    const k = document.createElement("td"); const kbd = document.createElement("kbd");
    kbd.textContent = keys; k.appendChild(kbd);
    const d = document.createElement("td"); d.textContent = t(label);
    tr.append(k, d);
    return tr;
  }));
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  // typing goes to text fields; a ticked checkbox keeps the shortcuts working
  const typing = event.target.closest("textarea, select, input:not([type=checkbox]):not([type=radio])");
  if (typing || document.querySelector("dialog[open]")) return;
  if ($("desk").hidden) return;
  const key = event.key.toLowerCase();
  const step = 5 / desk.zoom;
  const actions = {
    f: () => capture("front"), b: () => capture("back"), g: () => capture("face"),
    t: toggleTorch, l: startHologram, n: () => { if (!desk.caseInfo) send({type: "take_next"}); },
    d: openDecision, h: hangup, c: sendCallTan, "?": () => $("help").showModal(),
    "+": () => setZoom(desk.zoom * 1.25, desk.panX, desk.panY), "=": () => setZoom(desk.zoom * 1.25, desk.panX, desk.panY),
    "-": () => setZoom(desk.zoom / 1.25, desk.panX, desk.panY), "0": () => setZoom(1, 0, 0),
    arrowleft: () => setZoom(desk.zoom, desk.panX + step, desk.panY),
    arrowright: () => setZoom(desk.zoom, desk.panX - step, desk.panY),
    arrowup: () => setZoom(desk.zoom, desk.panX, desk.panY + step),
    arrowdown: () => setZoom(desk.zoom, desk.panX, desk.panY - step),
  };
  const index = Number(key) - 1;
  if (key >= "1" && key <= "8" && INSTRUCTION_KEYS[index]) actions[key] = () => instruct(INSTRUCTION_KEYS[index]);
  if (actions[key]) { event.preventDefault(); actions[key](); }
}

// --- start ----------------------------------------------------------------------------

function relabel() {
  renderInstructions();
  renderHelp();
  renderCase();
  renderGallery();
  if (desk.caseInfo) {
    const checked = [...$("checklist").querySelectorAll("input:checked")].map((i) => i.name);
    renderChecklist();
    for (const name of checked) $("checklist").querySelector(`[name=${name}]`).checked = true;
  }
  showTorch(desk.torch);
  if (desk.caseInfo) showCallTan(desk.callTan);
  renderAnalyses();
  renderHologram();
  showQuality(desk.quality);
  if ($("phone-state").dataset.key) $("phone-state").textContent = t($("phone-state").dataset.key);
  if ($("decision-dialog").open) fillReasons();
  showLastResult(desk.lastResult);
  deskError(desk.error);
  refreshQueue();
}

$("login").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
$("take-next").addEventListener("click", () => send({type: "take_next"}));
for (const button of document.querySelectorAll("[data-capture]")) {
  button.addEventListener("click", () => capture(button.dataset.capture));
}
$("torch-toggle").addEventListener("click", toggleTorch);
$("hologram-start").addEventListener("click", startHologram);
$("custom-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("custom-text").value.trim();
  if (text) { instruct("custom", text); $("custom-text").value = ""; }
});
$("hangup").addEventListener("click", hangup);
$("viewer-close").addEventListener("click", () => $("viewer").close());
$("help-open").addEventListener("click", () => $("help").showModal());
$("help-close").addEventListener("click", () => $("help").close());
document.addEventListener("keydown", onKey);
document.addEventListener("langchange", () => { if (desk.agent) relabel(); });
setupStage();
I18N.apply();
renderInstructions();
renderHelp();
api("/agent/api/me").then(loggedIn).catch(() => {
  $("login-view").hidden = false;
  $("login-name").focus();
});
