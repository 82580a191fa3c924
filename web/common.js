"use strict";
// Shared by the start and phone pages: JSON requests with the one error shape.

/** GET (no body) or POST JSON; a non-2xx answer throws with .api = {code, message}. */
async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error("api"), {api: data.error || {code: "other"}});
  return data;
}
