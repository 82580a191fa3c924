"use strict";
// The activation page: terms and consent, then the transaction number.
I18N.add("de", {
  "brand": "Video-Identifizierung",
  "footer": "Ihre Daten werden verschlüsselt übertragen und nur in Deutschland gespeichert.",
  "consent.title": "Video-Identifizierung starten",
  "consent.lead": "In einem kurzen Videoanruf zeigen Sie einem geschulten Mitarbeiter Ihren Ausweis. Das dauert etwa 5 bis 10 Minuten.",
  "need.title": "Das brauchen Sie",
  "need.phone": "Ein Smartphone oder Tablet mit Kamera (und Taschenlampe)",
  "need.document": "Ihren gültigen Personalausweis oder Reisepass",
  "need.network": "Eine stabile Internetverbindung",
  "hours": "Servicezeiten: täglich {hours}.",
  "consent.confirm": "Bitte bestätigen Sie",
  "consent.terms": "Ich akzeptiere die Nutzungsbedingungen.",
  "consent.terms_link": "Nutzungsbedingungen und Datenschutzhinweise lesen",
  "consent.processing": "Ich willige ein, dass meine Daten zur Identifizierung verarbeitet und an den Auftraggeber weitergegeben werden.",
  "consent.recording": "Ich willige ein, dass der Videoanruf (Bild und Ton) aufgezeichnet wird.",
  "consent.withdraw": "Sie können Ihre Einwilligung jederzeit für die Zukunft widerrufen.",
  "consent.missing": "Bitte bestätigen Sie alle drei Punkte.",
  "consent.submit": "Bestätigen und Vorgangsnummer erhalten",
  "tan.title": "Ihre Vorgangsnummer",
  "tan.yours": "Bitte notieren Sie diese Nummer:",
  "tan.until": "Gültig bis {until} Uhr.",
  "tan.mailed": "Wir haben sie Ihnen auch per E-Mail geschickt.",
  "next.title": "So geht es weiter",
  "next.phone": "Legen Sie Ihren Ausweis bereit und starten Sie den Videoanruf.",
  "next.open": "Video-Identifizierung jetzt starten",
  "next.desktop": "Scannen Sie den Code mit Ihrem Smartphone und geben Sie dort die Vorgangsnummer ein:",
  "next.qr": "QR-Code zum Öffnen der Video-Identifizierung auf dem Smartphone",
  "case.closed": "Vorgang nicht mehr offen",
  "case.state": "Diese Identifizierung ist bereits abgeschlossen oder nicht mehr gültig.",
  "error.link_unknown": "Dieser Link ist nicht gültig. Bitte nutzen Sie den Link aus Ihrer E-Mail.",
  "error.link_expired": "Dieser Link ist abgelaufen. Bitte fordern Sie bei Ihrem Auftraggeber einen neuen an.",
  "error.other": "Etwas ist schiefgegangen: {message}",
});
I18N.add("en", {
  "brand": "Video identification",
  "footer": "Your data is sent encrypted and stored only in Germany.",
  "consent.title": "Start the video identification",
  "consent.lead": "In a short video call you show your ID document to a trained agent. It takes about 5 to 10 minutes.",
  "need.title": "What you need",
  "need.phone": "A smartphone or tablet with a camera (and flashlight)",
  "need.document": "Your valid ID card or passport",
  "need.network": "A stable internet connection",
  "hours": "Service hours: daily {hours}.",
  "consent.confirm": "Please confirm",
  "consent.terms": "I accept the terms of use.",
  "consent.terms_link": "Read the terms of use and the privacy notice",
  "consent.processing": "I agree that my data is processed for the identification and passed to the organisation that asked for it.",
  "consent.recording": "I agree that the video call (picture and sound) is recorded.",
  "consent.withdraw": "You can withdraw your consent for the future at any time.",
  "consent.missing": "Please confirm all three points.",
  "consent.submit": "Confirm and get the transaction number",
  "tan.title": "Your transaction number",
  "tan.yours": "Please note this number:",
  "tan.until": "Valid until {until}.",
  "tan.mailed": "We have also sent it to you by e-mail.",
  "next.title": "What comes next",
  "next.phone": "Have your ID document ready and start the video call.",
  "next.open": "Start the video identification now",
  "next.desktop": "Scan the code with your smartphone and enter the transaction number there:",
  "next.qr": "QR code to open the video identification on your smartphone",
  "case.closed": "No longer open",
  "case.state": "This identification is already finished or no longer valid.",
  "error.link_unknown": "This link is not valid. Please use the link from your e-mail.",
  "error.link_expired": "This link has expired. Please ask the organisation for a new one.",
  "error.other": "Something went wrong: {message}",
});

const $ = (id) => document.getElementById(id);
const t = I18N.t;
const token = location.pathname.split("/").pop();
let hoursText = "", untilIso = "";
const shownErrors = {};  // element id -> the error shown there, redrawn on a language switch

function errorText(error) {
  const key = `error.${error.code}`;
  return t(key) === key ? t("error.other", {message: error.message || error.code}) : t(key);
}

// error: "missing" (a consent not ticked), an Error with .api from api(), or null
function showError(id, error) {
  shownErrors[id] = error;
  $(id).hidden = !error;
  if (!error) return;
  $(id).textContent = error === "missing" ? t("consent.missing")
    : error.api ? errorText(error.api) : String(error);
}

function show(id) {
  $("loading").hidden = true;
  for (const step of ["step-consent", "step-tan", "step-closed-case"]) $(step).hidden = step !== id;
}

function isDesktop() {
  return !/Android|iPhone|iPad|iPod|Mobile/i.test(navigator.userAgent)
    && window.matchMedia("(pointer: fine)").matches;
}

function renderDynamic() {
  $("hours").textContent = hoursText ? t("hours", {hours: hoursText}) : "";
  if (untilIso) {
    const until = new Date(untilIso).toLocaleString(I18N.lang === "de" ? "de-DE" : "en-GB",
      {timeZone: "Europe/Berlin", dateStyle: "short", timeStyle: "short"});
    $("tan-until").textContent = t("tan.until", {until});
  }
  for (const [id, error] of Object.entries(shownErrors)) showError(id, error);
}

async function load() {
  I18N.apply();
  try {
    const info = await api(`/api/v1/activation/${token}`);
    const hours = info.service.hours;
    hoursText = hours === "always" ? "" : hours.replace(" Europe/Berlin", "").replace("-", " – ");
    renderDynamic();
    if (["created", "activated", "consented"].includes(info.state)) show("step-consent");
    else show("step-closed-case");
  } catch (err) {
    $("loading").hidden = true;
    showError("notice", err);
  }
}

$("consent").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = {terms: form.terms.checked, processing: form.processing.checked,
    recording: form.recording.checked};
  if (!body.terms || !body.processing || !body.recording) {
    showError("consent-error", "missing");
    form.querySelector("input:not(:checked)").focus();
    return;
  }
  showError("consent-error", null);
  $("consent-submit").disabled = true;
  try {
    const result = await api(`/api/v1/activation/${token}/consent`, body);
    $("tan").textContent = result.tan;
    untilIso = result.tan_valid_until || "";
    renderDynamic();
    $("phone-link").href = result.phone_url;
    $("phone-url").textContent = result.phone_url;
    const desktop = isDesktop();
    $("on-desktop").hidden = !desktop;
    $("on-phone").hidden = desktop;
    show("step-tan");
    $("tan-title").focus();
  } catch (err) {
    showError("consent-error", err);
  } finally {
    $("consent-submit").disabled = false;
  }
});
document.addEventListener("langchange", renderDynamic);
load();
