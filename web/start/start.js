"use strict";
const token = location.pathname.split("/").pop();
const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

async function load() {
  try {
    const info = await api(`/api/v1/activation/${token}`);
    $("status").textContent = "Bitte bestätigen Sie:";
    $("consent").classList.remove("hidden");
    if (info.state !== "activated" && info.state !== "created" && info.state !== "consented") {
      $("status").textContent = `Dieser Vorgang ist bereits abgeschlossen (${info.state}).`;
      $("consent").classList.add("hidden");
    }
  } catch (err) {
    $("status").textContent = "";
    $("error").textContent = err.message;
  }
}

$("consent").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = {
    terms: form.terms.checked, processing: form.processing.checked,
    recording: form.recording.checked,
  };
  try {
    const result = await api(`/api/v1/activation/${token}/consent`, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
    });
    $("tan").textContent = result.tan;
    $("phone-link").href = result.phone_url;
    $("phone-link").textContent = result.phone_url;
    $("consent").classList.add("hidden");
    $("status").textContent = "";
    $("done").classList.remove("hidden");
    $("error").textContent = "";
  } catch (err) {
    $("error").textContent = err.message;
  }
});
load();
