"use strict";
// Texts in German (default) and English. Elements carry data-i18n="key" for their
// text, data-i18n-label / data-i18n-placeholder for attributes.
const I18N = (() => {
  const dicts = {de: {}, en: {}};
  const STORE = "identdesk.lang";
  let lang = "de";
  try { lang = localStorage.getItem(STORE) || "de"; } catch (err) { /* private mode */ }
  if (!(lang in dicts)) lang = "de";

  function t(key, vars) {
    let text = dicts[lang][key] ?? dicts.de[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.replaceAll(`{${name}}`, value);
    }
    return text;
  }

  function apply(root) {
    const scope = root || document;
    document.documentElement.lang = lang;
    for (const el of scope.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of scope.querySelectorAll("[data-i18n-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nLabel));
      el.title = t(el.dataset.i18nLabel);
    }
    for (const el of scope.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    }
    for (const el of scope.querySelectorAll("[data-lang-switch]")) {
      const other = lang === "de" ? "en" : "de";
      el.textContent = other === "en" ? "English" : "Deutsch";
      el.lang = other;
      el.setAttribute("aria-label", other === "en" ? "Switch to English" : "Auf Deutsch wechseln");
    }
    document.dispatchEvent(new CustomEvent("langchange", {detail: lang}));
  }

  function set(next) {
    if (!(next in dicts)) return;
    lang = next;
    try { localStorage.setItem(STORE, lang); } catch (err) { /* private mode */ }
    apply();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-lang-switch]");
    if (button) set(lang === "de" ? "en" : "de");
  });

  return {
    add(code, entries) { Object.assign(dicts[code], entries); },
    t, apply, set,
    get lang() { return lang; },
  };
})();
