"use strict";
// Minimal phone client: join with the transaction number, wait, call, torch.
const $ = (id) => document.getElementById(id);
let ws, pc, stream, track;

function show(step) {
  for (const id of ["step-tan", "step-wait", "step-call", "step-done"]) {
    $(id).classList.toggle("hidden", id !== step);
  }
}

function send(message) { ws.send(JSON.stringify(message)); }

async function openCamera() {
  stream = await navigator.mediaDevices.getUserMedia({
    video: {facingMode: {ideal: "environment"}, width: {ideal: 1280}, height: {ideal: 720}},
    audio: true,
  });
  track = stream.getVideoTracks()[0];
  $("local").srcObject = stream;
}

async function startCall() {
  if (pc) pc.close();
  pc = new RTCPeerConnection();
  stream.getTracks().forEach((t) => pc.addTrack(t, stream));
  pc.ontrack = (event) => { $("remote").srcObject = event.streams[0] || new MediaStream([event.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  send({type: "offer", sdp: pc.localDescription.sdp});
  show("step-call");
}

async function setTorch(on) {
  const caps = track && track.getCapabilities ? track.getCapabilities() : {};
  if (!caps.torch) {
    send({type: "torch_state", on: false, available: false, detail: "no torch control"});
    $("torch").textContent = "Ihr Gerät erlaubt kein Einschalten der Taschenlampe.";
    return;
  }
  try {
    await track.applyConstraints({advanced: [{torch: on}]});
    const actual = !!track.getSettings().torch;
    send({type: "torch_state", on: actual, available: true});
    $("torch").textContent = actual ? "Taschenlampe an" : "Taschenlampe aus";
  } catch (err) {
    send({type: "torch_state", on: false, available: false, detail: String(err).slice(0, 150)});
  }
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  if (msg.type === "queued") {
    show("step-wait");
    $("queue").textContent = `Position ${msg.position} – geschätzte Wartezeit ${Math.ceil(msg.estimated_wait_s / 60)} Min.`;
  } else if (msg.type === "call") startCall();
  else if (msg.type === "answer") pc.setRemoteDescription({type: "answer", sdp: msg.sdp});
  else if (msg.type === "torch") setTorch(msg.on);
  else if (msg.type === "instruction") $("instruction").textContent = msg.text || msg.key;
  else if (msg.type === "ended") { show("step-done"); if (pc) pc.close(); stream.getTracks().forEach((t) => t.stop()); }
  else if (msg.type === "agent_left") show("step-wait");
  else if (msg.type === "error") $("error").textContent = msg.error.message;
}

$("start").addEventListener("click", async () => {
  $("error").textContent = "";
  try { await openCamera(); } catch (err) {
    $("error").textContent = "Kamera nicht verfügbar: bitte erlauben Sie den Kamerazugriff in den Browser-Einstellungen.";
    return;
  }
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/phone`);
  ws.onopen = () => send({type: "join", tan: $("tan").value});
  ws.onmessage = onMessage;
});
