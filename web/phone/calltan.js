"use strict";
// The one-time code the agent e-mails during the call: a panel over the call view
// asks for it; the video keeps running underneath. Uses $, t, send from phone.js,
// which loads first and calls askCallTan, callTanResult, hideCallTan, callTanError.
const callTan = {result: null};  // {key, vars, kind} of the line shown under the input

function askCallTan() {
  const form = $("call-tan-form");
  $("call-tan").value = "";
  $("call-tan-submit").disabled = false;
  showCallTanResult(null);
  form.hidden = false;
  $("call-tan").focus({preventScroll: true});
}

function hideCallTan() {
  $("call-tan-form").hidden = true;
  showCallTanResult(null);
}

function showCallTanResult(result) {
  callTan.result = result;
  const box = $("call-tan-result");
  box.hidden = !result;
  if (!result) return;
  box.className = `notice ${result.kind}`;
  box.textContent = result.message || t(result.key, result.vars);
  $("call-tan").setAttribute("aria-invalid", result.kind === "error" ? "true" : "false");
}

function submitCallTan(event) {
  event.preventDefault();
  const code = $("call-tan").value.replace(/\s/g, "");
  if (!/^[0-9]{6}$/.test(code)) {
    showCallTanResult({key: "error.call_tan_malformed", kind: "error"});
    return;
  }
  $("call-tan-submit").disabled = true;
  showCallTanResult({key: "calltan.checking", kind: "warn"});
  send({type: "call_tan", tan: code});
}

function callTanResult(msg) {
  $("call-tan-submit").disabled = false;
  if (msg.ok) {
    $("call-tan-submit").disabled = true;
    showCallTanResult({key: "calltan.ok", kind: "ok"});
    setTimeout(() => { if (callTan.result && callTan.result.key === "calltan.ok") hideCallTan(); }, 4000);
  } else if (msg.locked) {
    $("call-tan-submit").disabled = true;
    showCallTanResult({key: "error.call_tan_locked", kind: "error"});
  } else {
    $("call-tan").select();
    showCallTanResult({key: "calltan.wrong", vars: {n: msg.attempts_left}, kind: "error"});
  }
}

function callTanError(error) {
  const key = `error.${error.code}`;
  const known = t(key) !== key;
  // a void or expired code cannot be sent again: wait for the agent's new one
  $("call-tan-submit").disabled = ["call_tan_locked", "call_tan_expired"].includes(error.code);
  showCallTanResult(known ? {key, kind: "error"} : {message: error.message, kind: "error"});
}

function relabelCallTan() {
  if (callTan.result) showCallTanResult(callTan.result);
}

document.addEventListener("langchange", relabelCallTan);
$("call-tan-form").addEventListener("submit", submitCallTan);
$("call-tan").addEventListener("input", (event) => {
  const input = event.target;
  const digits = input.value.replace(/[^0-9]/g, "").slice(0, 6);
  if (digits !== input.value.replace(/\s/g, "")) showCallTanResult({key: "calltan.digits", kind: "warn"});
  else if (callTan.result && callTan.result.key === "calltan.digits") showCallTanResult(null);
  input.value = digits;
});
