"use strict";
// The phone page: transaction number, device check, waiting room, call, finish.
const $ = (id) => document.getElementById(id);
const t = I18N.t;
const STEPS = ["step-desktop", "step-closed", "step-tan", "step-check", "step-wait",
  "step-call", "step-done"];
const SAVED_TAN = "identdesk.tan";  // sessionStorage: lets a reload rejoin the call
const DESKTOP_OK = "identdesk.desktop";  // sessionStorage: the visitor stays on the desktop
const state = {
  tan: "", ws: null, pc: null, stream: null, track: null, devices: [], deviceIndex: 0,
  joined: false, finished: false, torchOn: false, instruction: null, hints: null, retries: 0,
  queued: null, tanError: null, notice: null,
  pingSent: 0, pingResolve: null, step: "",
};

// sessionStorage throws where the browser blocks site data; the page works without it,
// only a reload starts over
function recall(key) {
  try { return sessionStorage.getItem(key) || ""; } catch (err) { return ""; }
}

function remember(key, value) {
  try {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch (err) { /* site data blocked */ }
}

function show(step) {
  state.step = step;
  for (const id of STEPS) $(id).hidden = id !== step;
  window.scrollTo(0, 0);
  document.body.classList.toggle("in-call", step === "step-call");
  const heading = $(step).querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus({preventScroll: true}); }
}

// kept as what to render ({key, vars} or a server {error}) for a relabel; null hides it
function notice(message, kind) {
  state.notice = message ? {...message, kind: kind || "error"} : null;
  const box = $("notice");
  box.textContent = !message ? "" : message.error ? errorText(message.error) : t(message.key, message.vars);
  box.className = `notice ${kind || "error"}`;
  box.hidden = !message;
}

function errorText(error) {
  const code = error.code || "other";
  if (code === "too_many_attempts") {
    const minutes = Math.ceil((error.retry_after || 60) / 60);
    const m = minutes <= 1 ? t("wait.minute") : t("wait.minutes", {n: minutes});
    return t("error.too_many_attempts", {m});
  }
  if (code === "service_closed") return t("error.service_closed", {when: error.opens_at_local || localTime(error.opens_at)});
  const key = `error.${code}`;
  return t(key) === key ? t("error.other", {message: error.message || code}) : t(key);
}

function localTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(I18N.lang === "de" ? "de-DE" : "en-GB",
    {timeZone: "Europe/Berlin", dateStyle: "short", timeStyle: "short"});
}

function isDesktop() {
  const mobile = /Android|iPhone|iPad|iPod|Mobile/i.test(navigator.userAgent)
    || (navigator.maxTouchPoints > 1 && /Macintosh/.test(navigator.userAgent));
  return !mobile && window.matchMedia("(pointer: fine)").matches;
}

// --- the transaction number --------------------------------------------------------

function formatTan(raw) {
  const chars = raw.toUpperCase().replace(/[^0-9A-Z]/g, "").slice(0, 10);
  return chars.length > 5 ? `${chars.slice(0, 5)}-${chars.slice(5)}` : chars;
}

// render writes the error in the language shown (kept for a relabel), or is null
function tanError(render) {
  state.tanError = render;
  const text = render ? render() : "";
  $("tan-error").textContent = text;
  $("tan-error").hidden = !text;
  $("tan").setAttribute("aria-invalid", text ? "true" : "false");
}

async function submitTan(event) {
  event.preventDefault();
  const tan = formatTan($("tan").value);
  $("tan").value = tan;
  tanError(null);
  const button = $("tan-submit");
  button.disabled = true;
  button.textContent = t("tan.checking");
  try {
    await api("/api/v1/tan/check", {tan});
    state.tan = tan;
    await deviceCheck();
  } catch (err) {
    if (err.api && err.api.code === "service_closed") showClosed(err.api.opens_at_local);
    else tanError(() => (err.api ? errorText(err.api) : t("error.network")));
    $("tan").focus();
  } finally {
    button.disabled = false;
    button.textContent = t("tan.submit");
  }
}

// --- camera: the rear lens chosen by device id, not by facingMode -------------------

function cameraScore(label) {
  // several phones answer facingMode "environment" with the ultra-wide lens
  const text = label.toLowerCase();
  let score = 0;
  if (/back|rear|rück|environment|hinten|facing back/.test(text)) score += 10;
  if (/front|user|selfie|vorne|facing front/.test(text)) score -= 10;
  if (/ultra|wide|weitwinkel|tele|macro|depth|infrared/.test(text)) score -= 5;
  const index = text.match(/camera2? (\d+)/);
  if (index) score -= Number(index[1]) * 0.1;  // Android lists the main lens first
  return score;
}

async function openCamera(deviceId) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw Object.assign(new Error("unsupported"), {name: "NotSupportedError"});
  }
  const video = {width: {ideal: 1280}, height: {ideal: 720}, frameRate: {ideal: 30}};
  if (deviceId) video.deviceId = {exact: deviceId};
  else video.facingMode = {ideal: "environment"};
  const stream = await navigator.mediaDevices.getUserMedia({video, audio: {echoCancellation: true}});
  if (state.stream) state.stream.getTracks().forEach((tr) => tr.stop());
  state.stream = stream;
  state.track = stream.getVideoTracks()[0];
  $("preview").srcObject = stream;
  $("local").srcObject = stream;
  return stream;
}

async function chooseRearCamera() {
  const all = await navigator.mediaDevices.enumerateDevices();
  state.devices = all.filter((d) => d.kind === "videoinput")
    .sort((a, b) => cameraScore(b.label) - cameraScore(a.label));
  $("switch-camera").hidden = state.devices.length < 2;
  $("call-switch").hidden = state.devices.length < 2;
  const best = state.devices[0];
  const current = state.track.getSettings().deviceId;
  if (best && best.deviceId && best.deviceId !== current) await openCamera(best.deviceId);
  state.deviceIndex = Math.max(0, state.devices.findIndex(
    (d) => d.deviceId === state.track.getSettings().deviceId));
  return state.track.label || (best ? best.label : "");
}

async function switchCamera() {
  if (state.devices.length < 2) return;
  state.deviceIndex = (state.deviceIndex + 1) % state.devices.length;
  await openCamera(state.devices[state.deviceIndex].deviceId);
  markRear();
  markTorch();
  if (state.pc) {
    for (const sender of state.pc.getSenders()) {
      if (sender.track && sender.track.kind === "video") await sender.replaceTrack(state.track);
      if (sender.track && sender.track.kind === "audio") {
        await sender.replaceTrack(state.stream.getAudioTracks()[0] || null);
      }
    }
    reportTorch(false);
  }
}

function torchAvailable() {
  const caps = state.track && state.track.getCapabilities ? state.track.getCapabilities() : {};
  return Boolean(caps.torch);
}

// --- device check --------------------------------------------------------------------

// a row of the device check; its detail text is kept as key and values for a relabel
function mark(id, status, key, vars) {
  const row = $(id);
  row.dataset.state = status;
  row.dataset.key = key || "";
  row.dataset.vars = JSON.stringify(vars || {});
  row.querySelector(".mark").textContent = {ok: "✓", warn: "!", bad: "✕", busy: "…"}[status] || "·";
  relabelMark(row);
}

function relabelMark(row) {
  const key = row.dataset.key;
  row.querySelector(".detail").textContent = key ? t(key, JSON.parse(row.dataset.vars)) : "";
}

function markRear() {
  const label = state.track ? state.track.label : "";
  const rear = cameraScore(label) > 0;
  mark("check-rear", rear ? "ok" : "warn", rear ? "check.rear_ok" : "check.rear_unknown", {label});
}

function markTorch() {
  mark("check-torch", torchAvailable() ? "ok" : "warn", torchAvailable() ? "check.torch_ok" : "check.torch_no");
}

async function deviceCheck() {
  show("step-check");
  $("camera-denied").hidden = true;
  $("preview").parentElement.hidden = false;
  $("join").disabled = true;
  for (const id of ["check-camera", "check-rear", "check-torch", "check-network"]) mark(id, "busy", "check.busy");
  const network = checkNetwork();
  try {
    await openCamera();
    mark("check-camera", "ok", "check.camera_ok");
    await chooseRearCamera();
    markRear();
    markTorch();
  } catch (err) {
    cameraFailed(err);
    await network;
    return false;
  }
  const ok = await network;
  $("join").disabled = !ok;
  return ok;
}

function cameraFailed(err) {
  for (const id of ["check-camera", "check-rear", "check-torch"]) mark(id, "bad");
  if (err.name === "NotAllowedError" || err.name === "SecurityError") {
    $("camera-denied").hidden = false;
    $("preview").parentElement.hidden = true;
    mark("check-camera", "bad", "denied.title");
    $("camera-retry").focus({preventScroll: true});
    $("camera-denied").scrollIntoView({block: "start"});
  } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
    notice({key: "camera.none"});
  } else if (err.name === "NotReadableError") {
    notice({key: "camera.busy"});
  } else {
    notice({key: "camera.unsupported"});
  }
}

async function checkNetwork() {
  try {
    await connectSocket();
    const started = performance.now();
    const pong = new Promise((resolve) => { state.pingResolve = resolve; });
    send({type: "ping"});
    const timeout = new Promise((resolve) => setTimeout(() => resolve(false), 5000));
    if (!(await Promise.race([pong, timeout]))) throw new Error("no pong");
    const ms = Math.round(performance.now() - started);
    mark("check-network", ms < 600 ? "ok" : "warn", ms < 600 ? "check.network_ok" : "check.network_slow", {ms});
    return true;
  } catch (err) {
    mark("check-network", "bad", "check.network_bad");
    return false;
  }
}

// --- the signaling socket --------------------------------------------------------------

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function connectSocket() {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/phone`);
    state.ws = ws;
    ws.onopen = () => { state.retries = 0; resolve(); };
    ws.onerror = () => reject(new Error("socket"));
    ws.onmessage = (event) => onMessage(JSON.parse(event.data));
    ws.onclose = () => onSocketClosed(ws);
  });
}

function onSocketClosed(ws) {
  if (ws !== state.ws || state.finished || !state.joined) return;
  // the connection dropped (tunnel, network switch): rejoin with the same number
  state.joined = false;
  showReconnecting(true);
  const delay = Math.min(8000, 500 * 2 ** state.retries++);
  setTimeout(async () => {
    try { await connectSocket(); send({type: "join", tan: state.tan}); }
    catch (err) { onSocketClosed(state.ws); }
  }, delay);
}

function showReconnecting(on) {
  $("reconnecting").hidden = !on;
  const box = $("wait-notice");
  if (on && state.step === "step-wait") {
    waitNotice("reconnect");
  } else if (!on && box.dataset.kind === "reconnect") {
    box.hidden = true;
  }
}

async function join() {
  $("join").disabled = true;
  notice(null);
  try {
    await connectSocket();
    send({type: "join", tan: state.tan});
  } catch (err) {
    notice({key: "error.network"});
    $("join").disabled = false;
  }
}

function onMessage(msg) {
  switch (msg.type) {
    case "pong": if (state.pingResolve) state.pingResolve(true); break;
    case "joined":
      state.joined = true;
      remember(SAVED_TAN, state.tan);
      break;
    case "queued": onQueued(msg); break;
    case "call": startCall(); break;
    case "answer":
      if (state.pc) state.pc.setRemoteDescription({type: "answer", sdp: msg.sdp});
      break;
    case "torch": setTorch(msg.on); break;
    case "instruction": showInstruction(msg); break;
    case "hints": showHints(msg); break;
    case "call_tan_requested": askCallTan(); break;
    case "call_tan_result": callTanResult(msg); break;
    case "agent_left": onAgentLeft("agent_left"); break;
    case "connection_lost": onAgentLeft("connection_lost"); break;
    case "agent_connection":
      if (state.step === "step-call") $("reconnecting").hidden = msg.state !== "disconnected";
      break;
    case "ended": finish(msg.decision); break;
    case "replaced": state.finished = true; stopMedia(); notice({key: "replaced"}, "warn"); break;
    case "error": onError(msg.error); break;
  }
}

function onError(error) {
  if ((error.code || "").startsWith("call_tan_")) {
    callTanError(error);
  } else if (["tan_unknown", "tan_malformed", "tan_expired", "too_many_attempts"].includes(error.code)) {
    forgetTan();
    state.joined = false;
    show("step-tan");
    tanError(() => errorText(error));
  } else if (error.code === "service_closed") {
    showClosed(error.opens_at_local || localTime(error.opens_at));
  } else if (error.code === "case_not_open") {
    forgetTan();
    state.finished = true;
    stopMedia();
    show("step-tan");
    tanError(() => errorText(error));
  } else {
    notice({error});
  }
}

function onQueued(msg) {
  showReconnecting(false);
  if (state.step !== "step-wait") $("wait-notice").hidden = true;
  show("step-wait");
  state.queued = msg;
  renderQueued();
}

function renderQueued() {
  if (!state.queued) return;
  $("queue-position").textContent = String(state.queued.position);
  const minutes = Math.ceil(state.queued.estimated_wait_s / 60);
  $("queue-wait").textContent = minutes < 1 ? t("wait.now") : t("wait.minutes", {n: minutes});
}

// why the phone waits again: "reconnect", "agent_left" or "connection_lost"
function waitNotice(kind) {
  const box = $("wait-notice");
  box.textContent = t(kind === "reconnect" ? "call.reconnecting" : `wait.${kind}`);
  box.dataset.kind = kind;
  box.hidden = false;
}

function onAgentLeft(kind) {
  closePeer();
  hideCallTan();
  state.instruction = null;
  renderInstruction();
  $("torch-hint").hidden = true;
  showHints(null);
  show("step-wait");
  waitNotice(kind);
}

// --- the call ------------------------------------------------------------------------

function keepResolution(sender) {
  const params = sender.getParameters();
  params.degradationPreference = "maintain-resolution";
  if (params.encodings && params.encodings.length) {
    params.encodings[0].maxBitrate = 2500000;  // enough for sharp 720p text
  }
  sender.setParameters(params).catch(() => {});  // before negotiation some browsers refuse
}

async function startCall() {
  showReconnecting(false);
  closePeer();
  show("step-call");
  if (!state.stream) {
    try { await openCamera(); await chooseRearCamera(); } catch (err) { cameraFailed(err); return; }
  }
  const pc = new RTCPeerConnection();
  state.pc = pc;
  state.stream.getTracks().forEach((track) => {
    // a document must stay legible: under load or low bandwidth the browser should
    // drop frames, not pixels ("detail" hint, maintain-resolution)
    if (track.kind === "video") track.contentHint = "detail";
    const sender = pc.addTrack(track, state.stream);
    if (track.kind === "video") keepResolution(sender);
  });
  pc.ontrack = (event) => {
    const remote = $("remote");
    if (!remote.srcObject) remote.srcObject = new MediaStream();
    remote.srcObject.addTrack(event.track);
  };
  pc.oniceconnectionstatechange = () => {
    const s = pc.iceConnectionState;
    if (pc !== state.pc) return;
    $("reconnecting").hidden = !(s === "disconnected" || s === "failed");
    if (s === "failed" && state.ws && state.ws.readyState === WebSocket.OPEN) startCall();
  };
  // the server takes no trickled candidates: send the offer once gathering is done
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  send({type: "offer", sdp: pc.localDescription.sdp});
  reportTorch(false);
}

function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);  // a slow STUN server must not block the call
  });
}

function closePeer() {
  if (state.pc) { state.pc.close(); state.pc = null; }
  $("remote").srcObject = null;
}

function showTorchState() {
  const available = torchAvailable();
  $("torch-state").textContent = !available ? t("torch.none") : t(state.torchOn ? "torch.on" : "torch.off");
}

function reportTorch(asked) {
  const available = torchAvailable();
  if (!available) state.torchOn = false;
  showTorchState();
  const detail = available ? "" : "the browser offers no torch control for this camera";
  send({type: "torch_state", on: state.torchOn, available, detail});
  $("torch-hint").hidden = available || !asked;
  $("torch-hint").textContent = t("torch.hint");
}

async function setTorch(on) {
  if (torchAvailable()) {
    try {
      await state.track.applyConstraints({advanced: [{torch: on}]});
      state.torchOn = Boolean(state.track.getSettings().torch);
    } catch (err) {
      state.torchOn = false;
    }
  }
  reportTorch(on);
}

function showInstruction(msg) {
  state.instruction = msg;
  $("torch-hint").hidden = true;
  renderInstruction();
}

function renderInstruction() {
  const msg = state.instruction;
  $("instruction").textContent = !msg ? "" : msg.key === "custom" ? msg.text : t(`instruction.${msg.key}`);
}

// the server's capture hints, most urgent first; the first is shown large
function showHints(msg) {
  state.hints = msg;
  const box = $("doc-hints");
  const texts = (msg && msg.texts && msg.texts[I18N.lang]) || [];
  box.replaceChildren(...texts.slice(0, 2).map((text, i) => {
    const line = document.createElement("div");
    line.className = i === 0 ? "main" : "more";
    line.textContent = text;
    return line;
  }));
  box.hidden = texts.length === 0;
}

function stopMedia() {
  closePeer();
  if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
  state.stream = null;
}

function forgetTan() {
  remember(SAVED_TAN, "");
}

function finish(decision) {
  state.finished = true;
  state.decision = decision;
  forgetTan();
  stopMedia();
  if (state.ws) state.ws.close();
  renderDone();
  show("step-done");
}

function renderDone() {
  if (!state.decision) return;
  const ok = state.decision === "approve";
  $("done-icon").textContent = ok ? "✓" : "i";
  $("done-icon").classList.toggle("bad", !ok);
  $("done-title").textContent = t(ok ? "done.ok.title" : "done.other.title");
  $("done-text").textContent = t(ok ? "done.ok.text" : "done.other.text");
}

function showClosed(when) {
  $("closed-text").textContent = t("closed.text", {when: when || ""});
  $("closed-text").dataset.when = when || "";
  show("step-closed");
}

// --- start ---------------------------------------------------------------------------

async function start() {
  I18N.apply();
  $("desktop-link").href = `${location.origin}/phone/`;
  $("desktop-link").textContent = `${location.origin}/phone/`;
  try {
    const service = await api("/api/v1/service");
    if (!service.open) { showClosed(service.opens_at_local); return; }
  } catch (err) {
    notice({key: "error.network"});
  }
  const saved = recall(SAVED_TAN);
  if (saved) {
    // a reload during the wait or the call: straight back in
    state.tan = saved;
    if (await deviceCheck()) await join();
    return;
  }
  const fromLink = new URLSearchParams(location.search).get("tan");
  if (fromLink) $("tan").value = formatTan(fromLink);
  if (isDesktop() && !recall(DESKTOP_OK)) show("step-desktop");
  else show("step-tan");
}

$("tan").addEventListener("input", (event) => {
  const input = event.target;
  const atEnd = input.selectionStart === input.value.length;
  input.value = formatTan(input.value);
  if (atEnd) input.setSelectionRange(input.value.length, input.value.length);
  tanError(null);
});
$("tan-form").addEventListener("submit", submitTan);
$("camera-retry").addEventListener("click", deviceCheck);
$("switch-camera").addEventListener("click", switchCamera);
$("call-switch").addEventListener("click", switchCamera);
$("join").addEventListener("click", join);
$("desktop-continue").addEventListener("click", () => {
  remember(DESKTOP_OK, "1");
  show("step-tan");
});
document.addEventListener("langchange", () => {
  renderInstruction();
  if (state.tanError) tanError(state.tanError);
  if (state.notice) notice(state.notice, state.notice.kind);
  $("torch-hint").textContent = t("torch.hint");
  if (state.hints) showHints(state.hints);
  if (state.step === "step-call") showTorchState();
  if (state.step === "step-closed") showClosed($("closed-text").dataset.when);
  document.querySelectorAll("#step-check [data-key]").forEach(relabelMark);
  renderQueued();
  if (!$("wait-notice").hidden) waitNotice($("wait-notice").dataset.kind);
  renderDone();
});
// the scripts after this one (calltan.js) must have run before the first message
document.addEventListener("DOMContentLoaded", start);
