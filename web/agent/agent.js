"use strict";
// Minimal agent console: log in, take the next case, capture, torch, decide.
const $ = (id) => document.getElementById(id);
let ws, pc, csrf, torchOn = false;

async function api(path, body) {
  const response = await fetch(path, {
    method: body ? "POST" : "GET",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf || ""},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error.message);
  return data;
}

function send(message) { ws.send(JSON.stringify(message)); }

async function connect(me) {
  csrf = me.csrf;
  $("who").textContent = me.agent.name;
  $("login").classList.add("hidden");
  $("desk").classList.remove("hidden");
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/agent`);
  ws.onmessage = onMessage;
}

async function offer() {
  pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
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
  });
  send({type: "offer", sdp: pc.localDescription.sdp});
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  if (msg.type === "case") {
    const id = msg.case.identity;
    $("case").textContent = `Case ${msg.case.id}: ${id.given_names} ${id.surname}, born ${id.birth_date}`;
    offer();
  } else if (msg.type === "answer") pc.setRemoteDescription({type: "answer", sdp: msg.sdp});
  else if (msg.type === "queue_empty") $("case").textContent = "Nobody is waiting.";
  else if (msg.type === "snapshot") {
    const img = document.createElement("img");
    img.src = msg.url; img.alt = `${msg.kind} ${msg.width}x${msg.height}`; img.title = img.alt;
    $("gallery").appendChild(img);
  } else if (msg.type === "torch_state") {
    torchOn = msg.on;
    $("torch-state").textContent = msg.available ? (msg.on ? "torch on" : "torch off") : "phone has no torch";
  } else if (msg.type === "decided") {
    $("case").textContent = `Decided: ${msg.decision} (${msg.reason})`;
    if (pc) pc.close();
    $("video").srcObject = null; $("gallery").innerHTML = "";
  } else if (msg.type === "error") $("error").textContent = msg.error.message;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await connect(await api("/agent/api/login", {name: event.target.name.value, password: event.target.password.value}));
    $("error").textContent = "";
  } catch (err) { $("error").textContent = err.message; }
});
$("next").addEventListener("click", () => send({type: "take_next"}));
$("logout").addEventListener("click", async () => { await api("/agent/api/logout", {}); location.reload(); });
for (const button of document.querySelectorAll("[data-capture]")) {
  button.addEventListener("click", () => send({type: "capture", kind: button.dataset.capture}));
}
$("torch").addEventListener("click", () => send({type: "torch", on: !torchOn}));
$("decide").addEventListener("click", () => send({type: "decide", decision: $("decision").value, reason: $("reason").value}));
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT") return;
  const keys = {f: "front", b: "back", g: "face"};
  if (keys[event.key]) send({type: "capture", kind: keys[event.key]});
  if (event.key === "t") send({type: "torch", on: !torchOn});
});
api("/agent/api/me").then(connect).catch(() => {});
