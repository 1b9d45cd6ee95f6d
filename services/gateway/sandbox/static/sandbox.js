// The sandbox phone: write as a customer, see the business's messages live (Server-Sent
// Events of /sandbox/api/stream), tap their buttons and list rows. A business message shown
// while the page is visible is reported read, which sends Meta's "read" status to
// switchboard. Plain ES module, no dependencies.

const $ = (id) => document.getElementById(id);
const form = { number: $("number"), name: $("name"), waId: $("wa-id") };
const list = $("messages");
const problem = $("problem");
const rows = new Map(); // wamid -> row, as the server last sent it
const reported = new Set(); // wamids already reported read
let source = null;

function remembered(key, fallback) {
  const value = localStorage.getItem(`sandbox.${key}`);
  return value || fallback;
}

function who() {
  return {
    phone_number_id: form.number.value.trim(),
    contact: { wa_id: form.waId.value.trim(), name: form.name.value.trim() },
  };
}

function valid() {
  return [form.number, form.name, form.waId].every((input) => input.checkValidity());
}

function say(text) {
  problem.hidden = !text;
  problem.textContent = text || "";
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const detail = await response.json().catch(() => ({}));
    const text = typeof detail.detail === "string" ? detail.detail : JSON.stringify(detail);
    throw new Error(`${response.status}: ${text}`);
  }
  return response.json();
}

async function send(extra) {
  if (!valid()) {
    say("Fill in the business number, your name and your WhatsApp number first.");
    return;
  }
  try {
    upsert(await post("/sandbox/api/messages", { ...who(), ...extra }));
    say("");
  } catch (error) {
    say(`Not sent: ${error.message}`);
  }
}

function follow() {
  if (source) source.close();
  rows.clear();
  list.replaceChildren();
  const title = document.querySelector(`#numbers option[value="${form.number.value}"]`);
  $("chat-title").textContent = title ? title.textContent : `Business ${form.number.value}`;
  const workspace = $("chat-title").textContent.split(" · ").pop();
  $("avatar").textContent = (workspace.trim()[0] || "B").toUpperCase();
  if (!valid()) return;
  for (const [key, input] of Object.entries(form)) localStorage.setItem(`sandbox.${key}`, input.value);
  const { phone_number_id: number, contact } = who();
  const query = new URLSearchParams({ phone_number_id: number, contact: contact.wa_id });
  source = new EventSource(`/sandbox/api/stream?${query}`);
  source.addEventListener("message", (event) => upsert(JSON.parse(event.data)));
}

function upsert(row) {
  const known = rows.get(row.wamid);
  if (known && known.version >= row.version) return;
  rows.set(row.wamid, row);
  const item = render(row);
  const existing = list.querySelector(`[data-wamid="${CSS.escape(row.wamid)}"]`);
  if (existing) {
    existing.replaceWith(item);
  } else {
    const later = [...list.children].find((li) => Number(li.dataset.seq) > row.seq);
    list.insertBefore(item, later || null);
    item.scrollIntoView({ block: "end" });
  }
  reportRead(row);
}

function reportRead(row) {
  const shown = row.direction === "to_customer" && ["sent", "delivered"].includes(row.status);
  if (!shown || reported.has(row.wamid) || document.visibilityState !== "visible") return;
  reported.add(row.wamid);
  post(`/sandbox/api/messages/${encodeURIComponent(row.wamid)}/read`).catch((error) => {
    reported.delete(row.wamid);
    say(`Read status not delivered: ${error.message}`);
  });
}

document.addEventListener("visibilitychange", () => rows.forEach(reportRead));

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render(row) {
  const item = element("li", `bubble ${row.direction} ${row.status}`);
  item.dataset.wamid = row.wamid;
  item.dataset.seq = row.seq;
  const message = row.message;
  if (row.direction === "to_customer") {
    renderBusiness(item, row, message);
  } else {
    renderCustomer(item, message);
  }
  const time = new Date(row.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const meta = element("span", "meta", time);
  if (row.direction === "from_customer") {
    const ticks = { accepted: "🕓", delivered: "✓✓", read: "✓✓", undelivered: "⚠" }[row.status] || "";
    const mark = element("span", `ticks ${row.status}`, ` ${ticks}`);
    mark.setAttribute("aria-label", row.status);
    meta.append(mark);
  }
  item.append(meta);
  if (row.problem) item.append(element("span", "note", row.problem));
  if (row.status === "failed") item.append(element("span", "note", "Meta did not deliver this message."));
  return item;
}

function renderCustomer(item, message) {
  if (message.type === "interactive") {
    const reply = message.interactive[message.interactive.type] || {};
    const answered = rows.get(message.context && message.context.id);
    if (answered) item.append(element("span", "quoted", bodyText(answered.message)));
    item.append(element("span", "text", reply.title || reply.id));
  } else {
    item.append(element("span", "text", message.text ? message.text.body : `[${message.type}]`));
  }
}

function bodyText(message) {
  if (message.type === "text") return message.text.body;
  if (message.type === "interactive") return (message.interactive.body || {}).text || "";
  if (message.type === "template") {
    const language = (message.template.language || {}).code || "";
    return `Template “${message.template.name}” (${language})`;
  }
  return `[${message.type}]`;
}

function renderBusiness(item, row, message) {
  item.append(element("span", "text", bodyText(message)));
  if (message.type !== "interactive") return;
  const interactive = message.interactive;
  const choose = (id) => send({ reply: { to: row.wamid, id } });
  if (interactive.type === "button") {
    const options = element("div", "options");
    options.setAttribute("role", "group");
    options.setAttribute("aria-label", "Reply buttons");
    for (const { reply } of interactive.action.buttons) {
      const button = element("button", "", reply.title);
      button.type = "button";
      button.addEventListener("click", () => choose(reply.id));
      options.append(button);
    }
    item.append(options);
  } else if (interactive.type === "list") {
    const toggle = element("button", "list-toggle", `☰ ${interactive.action.button}`);
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "false");
    const options = element("div", "options rows");
    options.hidden = true;
    options.setAttribute("role", "group");
    options.setAttribute("aria-label", interactive.action.button);
    for (const section of interactive.action.sections) {
      if (section.title) options.append(element("strong", "", section.title));
      for (const choice of section.rows) {
        const button = element("button", "", choice.title);
        button.type = "button";
        if (choice.description) button.append(element("small", "", choice.description));
        button.addEventListener("click", () => choose(choice.id));
        options.append(button);
      }
    }
    toggle.addEventListener("click", () => {
      options.hidden = !options.hidden;
      toggle.setAttribute("aria-expanded", String(!options.hidden));
    });
    item.append(toggle, options);
  }
}

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  await send({ text });
  input.focus();
});

$("who").addEventListener("change", follow);
$("who").addEventListener("submit", (event) => {
  event.preventDefault();
  follow();
});

form.number.value = remembered("number", form.number.value);
form.waId.value = remembered("waId", `57300${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`);
form.name.value = remembered("name", `Customer ${form.waId.value.slice(-4)}`);
follow();
