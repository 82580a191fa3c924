"use strict";
// The in-call TAN on the agent's side: send the one-time code (C), follow what the
// phone does with it, and tick the checklist's "tan" item once the phone confirmed it.
// Uses $, t, send and desk from agent.js, checkDecision from decide.js.

function sendCallTan() {
  if (desk.caseInfo) send({type: "send_call_tan"});
}

function showCallTan(msg) {
  desk.callTan = msg;
  const state = msg ? msg.state : "none";
  const box = $("call-tan-state");
  box.dataset.state = state;
  box.textContent = t(`calltan.${state}`, {wrong: msg && msg.wrong, left: msg && msg.attempts_left});
  syncTanCheck();
}

// only the phone's confirmation ticks the item: the server checks the same
function syncTanCheck() {
  const box = $("checklist").querySelector("input[name=tan]");
  if (!box) return;
  box.disabled = true;
  box.checked = Boolean(desk.callTan && desk.callTan.state === "confirmed");
  if ($("decision-dialog").open) checkDecision();
}

$("call-tan-send").addEventListener("click", sendCallTan);
