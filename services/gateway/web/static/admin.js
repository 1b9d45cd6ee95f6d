// Admin pages: forms and buttons that call the JSON API (data-api="METHOD /path/{field}"),
// the new member's token shown once, and the numbers page.
import { api, debounce, flash, toast } from "./api.js";

function route(spec, fields) {
  const [method, template] = spec.split(" ");
  const used = new Set();
  const path = template.replace(/\{(\w+)\}/g, (_, name) => {
    used.add(name);
    return encodeURIComponent(fields[name] ?? "");
  });
  return { method, path, used };
}

function fieldsOf(form) {
  const fields = {};
  for (const element of form.elements) {
    if (!element.name || element.disabled) continue;
    fields[element.name] = element.type === "number" ? Number(element.value) : element.value;
  }
  return fields;
}

async function call(spec, fields) {
  const { method, path, used } = route(spec, fields);
  const body = Object.fromEntries(Object.entries(fields).filter(([name]) => !used.has(name)));
  return api(method, path, Object.keys(body).length ? body : undefined);
}

function after(element, data) {
  const then = element.dataset.then;
  if (then === "open-group" && data?.group_id) { location.assign(`/admin/groups/${data.group_id}`); return; }
  if (then) { location.assign(then); return; }
  location.reload();
}

function showToken(data) {
  const dialog = document.getElementById("token-dialog");
  dialog.querySelector("[data-name]").textContent = data.name;
  dialog.querySelector("#new-token").value = data.token;
  dialog.querySelector(".copied").textContent = "";
  dialog.addEventListener("close", () => location.reload(), { once: true });
  dialog.showModal();
  dialog.querySelector("#new-token").select();
}

export function setupAdmin() {
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    const submit = form.querySelector("button[type=submit], button:not([type])");
    if (submit) submit.disabled = true;
    try {
      const { status, data } = await call(form.dataset.api, fieldsOf(form));
      if (form.id === "add-member") {
        form.reset();
        showToken(data);
        return;
      }
      flash(status === 202 ? "Accepted; it will show in a moment." : "Saved.");
      after(form, data);
    } catch (error) {
      toast(error.message, true);
    } finally {
      if (submit) submit.disabled = false;
    }
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-api]");
    if (button) {
      if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
      button.disabled = true;
      try {
        const { data } = await call(button.dataset.api, {});
        flash("Done.");
        after(button, data);
      } catch (error) {
        toast(error.message, true);
        button.disabled = false;
      }
      return;
    }
    if (event.target.closest("#copy-token")) {
      const dialog = document.getElementById("token-dialog");
      const token = dialog.querySelector("#new-token").value;
      try {
        await navigator.clipboard.writeText(token);
        dialog.querySelector(".copied").textContent = "Copied to the clipboard.";
      } catch {
        dialog.querySelector("#new-token").select();
        dialog.querySelector(".copied").textContent = "Select the token and copy it (Ctrl+C).";
      }
    }
  });
}

export async function setupNumbers() {
  const table = document.getElementById("numbers");
  const body = table.querySelector("tbody");
  const options = document.getElementById("flow-options").innerHTML;
  let numbers;
  try {
    ({ data: { numbers } } = await api("GET", "/api/numbers"));
  } catch (error) {
    body.innerHTML = "";
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 3;
    cell.className = "empty";
    cell.textContent = `The business numbers could not be listed: ${error.message}`;
    table.setAttribute("aria-busy", "false");
    return;
  }
  body.innerHTML = "";
  for (const number of numbers) {
    const row = body.insertRow();
    row.dataset.phoneNumberId = number.phone_number_id;
    const name = row.insertCell();
    name.innerHTML = "<strong></strong><br><small></small>";
    name.querySelector("strong").textContent = number.display_phone_number || number.phone_number_id;
    name.querySelector("small").textContent = `phone_number_id ${number.phone_number_id}`;

    const flowCell = row.insertCell();
    const select = document.createElement("select");
    select.setAttribute("aria-label", `Active flow of ${number.display_phone_number || number.phone_number_id}`);
    select.innerHTML = `<option value="">— no flow —</option>${options}`;
    select.value = number.active_flow_id ?? "";
    select.addEventListener("change", async () => {
      if (!select.value) return;
      try {
        await api("PUT", `/api/numbers/${encodeURIComponent(number.phone_number_id)}/flow`, { flow_id: select.value });
        toast(`New conversations on ${number.display_phone_number || number.phone_number_id} run ${select.selectedOptions[0].textContent}.`);
      } catch (error) {
        toast(error.message, true);
        select.value = number.active_flow_id ?? "";
      }
    });
    flowCell.append(select);

    const agentCell = row.insertCell();
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "switch";
    toggle.setAttribute("role", "switch");
    toggle.setAttribute("aria-label", `Agent conversations on ${number.display_phone_number || number.phone_number_id}`);
    toggle.innerHTML = '<span class="knob" aria-hidden="true"></span><span class="state"></span>';
    const show = (on) => {
      toggle.setAttribute("aria-checked", String(on));
      toggle.querySelector(".state").textContent = on ? "On: flows hand off to agents" : "Off: flows do not hand off";
    };
    show(Boolean(number.agent_conversations));
    toggle.addEventListener("click", async () => {
      const on = toggle.getAttribute("aria-checked") !== "true";
      show(on);
      try {
        await api("PUT", `/api/numbers/${encodeURIComponent(number.phone_number_id)}/agent-conversations`, { enabled: on });
        toast(`Agent conversations ${on ? "activated" : "turned off"}.`);
      } catch (error) {
        show(!on);
        toast(error.message, true);
      }
    });
    agentCell.append(toggle);
  }
  if (!numbers.length) body.innerHTML = '<tr><td colspan="3" class="empty">No business numbers.</td></tr>';
  table.setAttribute("aria-busy", "false");
}

/** Keep a members, groups or metrics page current (statuses, loads, queues and figures
 * change all day), unless the admin is in the middle of something: a focused field, an open
 * form or dialog. (The metrics come from their own projection, which may commit a moment
 * after the event that woke the page: the next event brings the page level again.) */
export function liveAdminPage(page) {
  if (!["members", "groups", "group", "numbers", "metrics"].includes(page)) return () => {};
  const busy = () => {
    const active = document.activeElement;
    return Boolean(
      document.querySelector("dialog[open], main details[open]")
        || (active && active !== document.body && active.closest("main form, #numbers select"))
    );
  };
  const refresh = debounce(async () => {
    if (busy()) { setTimeout(refresh, 1000); return; }
    if (page === "numbers") { await setupNumbers(); return; }
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const main = fresh.querySelector("main");
    if (main && !busy()) document.querySelector("main").innerHTML = main.innerHTML;
  }, 300);
  return (kind) => {
    if (kind.startsWith("directory.") || kind.startsWith("assignment.") || kind.startsWith("conversation.")) {
      refresh();
    }
  };
}
