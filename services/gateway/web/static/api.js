// Calls to the JSON API with the session cookie and the page's CSRF token, and the toast
// that tells the agent what happened.

export class ApiError extends Error {
  constructor(status, detail, data) {
    super(detail);
    this.status = status;
    this.data = data;
  }
}

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function signInAgain() {
  const back = location.pathname + location.search;
  location.assign(`/sign-in?next=${encodeURIComponent(back)}`);
}

function describe(data, status) {
  const detail = data?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return `the server answered ${status}`;
}

/** Call the API; resolves to {status, data}; throws ApiError with the server's reason. */
export async function api(method, path, body, contentType, extraHeaders = {}) {
  const headers = { ...extraHeaders, "X-CSRF-Token": csrf(), Accept: "application/json" };
  let payload;
  if (typeof body === "string") {
    payload = body;
    headers["Content-Type"] = contentType ?? "text/plain";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401) {
    signInAgain();
    throw new ApiError(401, "signed out", null);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!response.ok) throw new ApiError(response.status, describe(data, response.status), data);
  return { status: response.status, data };
}

/** A server-rendered fragment (/ui/...), parsed. */
export async function fragment(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (response.status === 401) {
    signInAgain();
    throw new ApiError(401, "signed out", null);
  }
  if (!response.ok) throw new ApiError(response.status, `the server answered ${response.status}`, null);
  return new DOMParser().parseFromString(await response.text(), "text/html");
}

let toastTimer;
/** Say something in the page's live region (read by screen readers too). */
export function toast(message, problem = false) {
  const region = document.getElementById("toast");
  if (!region) return;
  region.textContent = message;
  region.classList.toggle("problem", problem);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { region.textContent = ""; }, problem ? 8000 : 4000);
}

/** Remember a message across a reload (admin pages reload after a change). */
export function flash(message) {
  sessionStorage.setItem("switchboard.flash", message);
}

export function showFlash() {
  const message = sessionStorage.getItem("switchboard.flash");
  if (message) {
    sessionStorage.removeItem("switchboard.flash");
    toast(message);
  }
}

export function debounce(action, wait) {
  let timer;
  let running = null;
  let again = false;
  const run = async () => {
    if (running) { again = true; return; }
    running = action();
    try { await running; } catch (error) { console.warn(error); }
    running = null;
    if (again) { again = false; schedule(); }
  };
  const schedule = () => { clearTimeout(timer); timer = setTimeout(run, wait); };
  return schedule;
}

/** Run ``action`` at once when idle; what asks for it while it runs gets one more run after
 * it (a burst of stream events costs two fetches, and the first starts without waiting).
 * The promise returned settles when a run that started after the call has finished. */
export function coalesce(action) {
  let current = null;
  let next = null;
  const run = () => {
    if (!current) {
      current = (async () => {
        try { await action(); } catch (error) { console.warn(error); }
      })().finally(() => { current = null; });
      return current;
    }
    next ??= current.then(() => { next = null; return run(); });
    return next;
  };
  return run;
}
