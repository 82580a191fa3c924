"use strict";
// The decision dialog: result, reason code, the snapshots and checklist an approval
// needs, and the override of the server's document check. The server refuses an
// approval when the latest analysis with a valid MRZ reads an expired document or a
// type not accepted (agent_console/desk.py); the agent may then approve with an
// override reason and a note that explains it. Uses $, t, send and desk from agent.js.

const DOCUMENT_REFUSALS = ["document_expired", "document_not_accepted"];

function chosen(name) {
  return new FormData($("decision-form")).get(name) || "";
}

function fillReasons() {
  const decision = chosen("decision");
  const current = $("reason").value;
  $("reason").replaceChildren(...REASON_CODES[decision].map((code) => {
    const option = document.createElement("option");
    option.value = code; option.textContent = t(`reason.${code}`);
    return option;
  }));
  if (REASON_CODES[decision].includes(current)) $("reason").value = current;
  checkDecision();
}

function missingForApproval() {
  const kinds = new Set(desk.snapshots.map((s) => s.kind));
  return ["front", "back", "face"].filter((k) => !kinds.has(k));
}

function checkedItems() {
  return [...$("checklist").querySelectorAll("input:checked")].map((i) => i.name);
}

// what the latest analysis shown with a valid MRZ says against the document, read as
// the server reads it; null when nothing (or no reliable reading)
function shownVerdict() {
  const reading = desk.analyses.find((a) => a.mrz && a.mrz.found && a.mrz.valid);
  if (!reading) return null;
  if (reading.mrz.expired) return "document_expired";
  return reading.mrz.accepted ? null : "document_not_accepted";
}

// the override choice: shown for an approval after the server refused it, or when
// the console's latest analysis already speaks against the document
function renderOverride() {
  const verdict = chosen("decision") === "approve" ? desk.refusal || shownVerdict() : null;
  const box = $("override-box");
  box.hidden = !verdict;
  box.dataset.verdict = verdict || "";
  if (!verdict) $("override-none").checked = true;
  $("override-why").textContent = !verdict ? ""
    : t(desk.refusal ? `error.${verdict}` : `override.${verdict}`);
  const needed = Boolean(chosen("override"));
  const label = $("note-label");
  label.dataset.i18n = needed ? "decide.note_required" : "decide.note";
  label.textContent = t(label.dataset.i18n);
  $("note").required = needed;
  return needed;
}

function checkDecision() {
  const decision = chosen("decision");
  const missing = decision === "approve" ? missingForApproval() : [];
  const ticked = new Set(checkedItems());
  const open = decision === "approve" ? CHECKS.filter((c) => !ticked.has(c)) : [];
  const warnings = [];
  if (missing.length) warnings.push(t("decide.missing", {kinds: missing.map((k) => t(`kind.${k}`)).join(", ")}));
  if (open.length) warnings.push(t("decide.unchecked", {checks: open.map((c) => t(`check.${c}`)).join(", ")}));
  if (renderOverride() && !$("note").value.trim()) warnings.push(t("decide.note_needed"));
  $("decision-warning").hidden = !warnings.length;
  $("decision-warning").textContent = warnings.join(" ");
  $("decide-submit").disabled = warnings.length > 0;
}

function openDecision() {
  if (!desk.caseInfo) return;
  fillReasons();
  $("decision-dialog").showModal();
}

// the server refused an approval for what the document reads: the dialog opens
// again on the override choice, the note typed before kept
function documentRefused(code) {
  desk.refusal = code;
  if (!desk.caseInfo) return;
  $("decision-form").querySelector("input[name=decision][value=approve]").checked = true;
  if (!$("decision-dialog").open) openDecision();
  else fillReasons();
  $("override-box").querySelector("input:checked").focus();
}

// a new case starts with an empty note and no refusal
function resetDecision() {
  desk.refusal = null;
  $("note").value = "";
  $("override-none").checked = true;
}

function submitDecision(event) {
  event.preventDefault();
  const message = {type: "decide", decision: chosen("decision"), reason: chosen("reason"),
    note: $("note").value, checks: checkedItems()};
  const override = chosen("override");
  if (message.decision === "approve" && override) message.override = override;
  send(message);
  $("decision-dialog").close();
}

$("decide-open").addEventListener("click", openDecision);
$("decide-cancel").addEventListener("click", () => $("decision-dialog").close());
$("decision-form").addEventListener("submit", submitDecision);
$("decision-form").addEventListener("change", (event) => {
  if (event.target.name === "decision") fillReasons();
  else if (event.target.name === "override") checkDecision();
});
$("note").addEventListener("input", () => { if ($("note").required) checkDecision(); });
