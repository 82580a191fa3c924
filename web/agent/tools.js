"use strict";
// The agent console's document tools: the live outline and quality hints over the
// video, each snapshot's analysis (rectified image, MRZ and checks, faces) and the
// hologram check. Loaded before agent.js, whose state (`desk`) these functions use.

// --- document tools: live outline and hints, snapshot analyses, hologram check ---------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function mark(ok) {
  const span = el("span", ok ? "mark ok" : "mark bad", ok ? "✓" : "✗");
  span.setAttribute("aria-label", t(ok ? "ana.ok" : "ana.failed"));
  return span;
}

function showQuality(msg) {
  desk.quality = msg;
  clearTimeout(desk.qualityTimer);
  const poly = $("outline-poly");
  const hints = $("live-hints");
  if (!msg) {
    poly.setAttribute("points", "");
    hints.hidden = true;
    return;
  }
  // an outline older than a few analyses is stale: hide it rather than mislead
  desk.qualityTimer = setTimeout(() => showQuality(null), 2500);
  const [w, h] = msg.frame_size;
  $("outline").setAttribute("viewBox", `0 0 ${w} ${h}`);
  poly.setAttribute("points", msg.corners ? msg.corners.map(([x, y]) => `${x},${y}`).join(" ") : "");
  poly.dataset.state = msg.hints.length ? "warn" : "ok";
  const texts = (msg.texts && msg.texts[I18N.lang]) || [];
  hints.replaceChildren(...texts.map((text) => el("div", "", text)));
  const f = msg.figures;
  if (f.found) {
    hints.append(el("div", "figures", t("ana.figures", {sharp: Math.round(f.sharpness),
      bright: Math.round(f.brightness), glare: (100 * f.glare).toFixed(1), size: Math.round(100 * f.size)})));
  }
  hints.dataset.state = msg.hints.length ? "warn" : "ok";
  hints.hidden = false;
}

function addAnalysis(msg) {
  desk.analyses.unshift(msg);
  renderAnalyses();
  if ($("decision-dialog").open) checkDecision();  // it may now offer an override
}

function latestImage(name) {
  const found = desk.analyses.find((a) => a.images && a.images[name]);
  return found ? found.images[name] : null;
}

function renderFaces() {
  const cells = [["live_face", "ana.live_face"], ["portrait", "ana.portrait"]].map(([name, key]) => {
    const figure = el("figure", "face");
    const url = latestImage(name);
    if (url) {
      const img = el("img");
      img.src = url; img.alt = t(key); img.dataset.image = name;
      img.addEventListener("click", () => openImage(t(key), url));
      figure.append(img);
    } else {
      figure.append(el("div", "face-missing muted", t("ana.no_face")));
    }
    figure.append(el("figcaption", "", t(key)));
    return figure;
  });
  $("faces").replaceChildren(...cells);
  $("faces").hidden = !desk.analyses.length;
}

const MRZ_FIELDS = ["document_type", "issuing_state", "document_number", "surname", "given_names",
  "nationality", "birth_date", "sex", "expiry_date"];

function mrzTable(mrz) {
  const table = el("table", "mrz-table");
  for (const name of MRZ_FIELDS) {
    if (!(name in mrz.fields)) continue;
    const tr = el("tr");
    tr.append(el("th", "", t(`mrz.${name}`)), el("td", "", mrz.fields[name] || "–"));
    const check = el("td");
    if (name in mrz.checks) check.append(mark(mrz.checks[name]));
    tr.append(check);
    table.append(tr);
  }
  if ("composite" in mrz.checks) {
    const tr = el("tr");
    const cell = el("td");
    cell.append(mark(mrz.checks.composite));
    tr.append(el("th", "", t("mrz.composite")), el("td"), cell);
    table.append(tr);
  }
  return table;
}

function verdictList(mrz) {
  const list = el("ul", "verdicts");
  const items = [["ana.valid", mrz.valid], ["ana.not_expired", mrz.expired === false],
    ["ana.accepted", mrz.accepted]];
  for (const [key, ok] of items) {
    const li = el("li");
    li.append(mark(ok), el("span", "", t(key)));
    list.append(li);
  }
  if (!mrz.valid && mrz.reason) list.append(el("li", "muted", mrz.reason));
  return list;
}

function identityTable(identity) {
  const table = el("table", "identity-table");
  const expected = (desk.caseInfo && desk.caseInfo.identity) || {};
  for (const name of ["surname", "given_names", "birth_date"]) {
    const tr = el("tr");
    tr.dataset.field = name;
    tr.dataset.status = identity[name];
    const cell = el("td");
    cell.append(mark(identity[name] === "match" || identity[name] === "truncated"));
    tr.append(el("th", "", t(`mrz.${name}`)), el("td", "", expected[name] || "–"),
      el("td", "muted", t(`ana.id.${identity[name]}`)), cell);
    table.append(tr);
  }
  return table;
}

function analysisCard(a) {
  const card = el("section", "analysis");
  card.dataset.snapshot = a.snapshot;
  const head = el("div", "row");
  head.append(el("strong", "", t(`kind.${a.kind}`)));
  // "unsure": every check digit passes but the reader doubts a character that
  // no check digit covers (names, country codes): the agent reads it by eye
  const unsure = !a.mrz.valid && (a.mrz.uncertain_fields || []).length > 0
    && Object.values(a.mrz.checks || {}).every(Boolean);
  const state = !a.mrz.found ? "none" : a.mrz.valid ? "ok" : unsure ? "unsure" : "bad";
  const badge = el("span", `badge-small ${state}`, t(`ana.mrz.${state}`));
  head.append(badge);
  card.append(head);
  if (a.images.rectified) {
    const img = el("img", "rectified");
    img.src = a.images.rectified; img.alt = t("ana.rectified");
    img.addEventListener("click", () => openImage(`${t("ana.rectified")} – ${t(`kind.${a.kind}`)}`, a.images.rectified));
    card.append(img);
  } else {
    card.append(el("p", "muted", t("ana.no_document")));
  }
  if (a.mrz.found) {
    card.append(verdictList(a.mrz));
    if (a.mrz.lines && a.mrz.lines.length) card.append(el("pre", "mrz-lines", a.mrz.lines.join("\n")));
    card.append(mrzTable(a.mrz));
  }
  if (a.identity) {
    card.append(el("h3", "", t("ana.identity")));
    card.append(identityTable(a.identity));
  }
  const q = a.quality;
  if (q.found) {
    card.append(el("p", "muted small", t("ana.figures", {sharp: Math.round(q.sharpness),
      bright: Math.round(q.brightness), glare: (100 * q.glare).toFixed(1), size: Math.round(100 * q.size)})));
  }
  return card;
}

function renderAnalyses() {
  renderFaces();
  if (!desk.analyses.length) {
    $("analyses").replaceChildren(el("p", "muted", t("ana.none")));
    return;
  }
  $("analyses").replaceChildren(...desk.analyses.map(analysisCard));
}

function startHologram() {
  if (!desk.caseInfo || (desk.hologram && desk.hologram.running)) return;
  send({type: "torch_challenge"});
}

function renderHologram() {
  const box = $("hologram");
  const h = desk.hologram;
  $("hologram-start").disabled = Boolean(h && h.running);
  $("torch-toggle").disabled = Boolean(h && h.running);
  $("hologram-start").setAttribute("aria-busy", String(Boolean(h && h.running)));
  if (!h) { box.replaceChildren(); box.hidden = true; return; }
  box.hidden = false;
  if (h.running) {
    const key = h.variant === "tilt" ? "holo.running_tilt" : "holo.running";
    box.replaceChildren(el("p", "running", t(key, {s: Math.round(h.seconds + 1)})));
    return;
  }
  const head = el("div", "row");
  head.append(el("strong", "", t("holo.title")));
  const badge = el("span", `badge-small ${h.verdict === "genuine" ? "ok" : h.verdict === "suspect" ? "bad" : "none"}`,
    t(`holo.${h.verdict}`));
  badge.dataset.verdict = h.verdict;
  head.append(badge);
  const parts = [head, el("p", "", t("holo.score", {score: Number(h.score).toFixed(2)})),
    el("p", "muted", h.reason)];
  if (h.overlay_url) {
    const title = t(h.variant === "tilt" ? "holo.strip" : "holo.overlay");
    const img = el("img", "rectified");
    img.src = h.overlay_url; img.alt = title;
    img.addEventListener("click", () => openImage(title, h.overlay_url));
    parts.push(img);
  }
  if (h.intervals && h.intervals.length) {
    const table = el("table", "intervals");
    const head2 = el("tr");
    for (const key of ["holo.time", "holo.torch", "holo.frames", "holo.brightness", "holo.hue"]) head2.append(el("th", "", t(key)));
    table.append(head2);
    for (const iv of h.intervals) {
      const tr = el("tr");
      tr.append(el("td", "", `${iv.start.toFixed(1)}–${iv.end.toFixed(1)} s`), el("td", "", t(iv.torch ? "holo.on" : "holo.off")),
        el("td", "", iv.frames), el("td", "", iv.brightness.toFixed(0)), el("td", "", iv.hue_change.toFixed(3)));
      table.append(tr);
    }
    parts.push(table);
  }
  box.replaceChildren(...parts);
}
