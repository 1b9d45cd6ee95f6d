// Canned responses in the reply box: typing "/" (at the start of the box or after a space)
// offers the workspace's responses whose shortcut starts with what follows, filled for the
// open conversation by the server (GET /api/conversations/{id}/canned-responses). Arrow keys
// move through them, Enter or Tab inserts the chosen one in place of "/shortcut", Escape
// closes the list; a click inserts too.
import { api } from "./api.js";

const TRIGGER = /(^|\s)\/([A-Za-z0-9_-]*)$/;

export function setupCanned(pane, conversationId) {
  const cache = new Map(); // conversation id -> its filled responses (fetched once per opening)
  let offered = [];
  let chosen = 0;

  const parts = () => ({
    box: pane.querySelector("#reply-text"),
    list: pane.querySelector("#canned-list"),
  });

  const responses = async (id) => {
    if (!cache.has(id)) {
      const found = api("GET", `/api/conversations/${id}/canned-responses`)
        .then(({ data }) => data.canned_responses)
        .catch(() => { cache.delete(id); return []; });
      cache.set(id, found);
    }
    return cache.get(id);
  };

  const close = () => {
    const { box, list } = parts();
    offered = [];
    if (list) { list.hidden = true; list.replaceChildren(); }
    box?.setAttribute("aria-expanded", "false");
    box?.removeAttribute("aria-activedescendant");
  };

  const mark = () => {
    const { box, list } = parts();
    list.querySelectorAll("li").forEach((li, index) => {
      li.setAttribute("aria-selected", String(index === chosen));
      if (index === chosen) {
        box.setAttribute("aria-activedescendant", li.id);
        li.scrollIntoView({ block: "nearest" });
      }
    });
  };

  const typed = () => {
    const { box } = parts();
    return box.value.slice(0, box.selectionStart).match(TRIGGER);
  };

  const show = async () => {
    const { box, list } = parts();
    const id = conversationId();
    if (!box || !list || box.disabled || !id) return;
    const match = typed();
    if (!match) { close(); return; }
    const query = match[2].toLowerCase();
    const all = await responses(id);
    if (conversationId() !== id) return;
    offered = all.filter((r) => r.shortcut.toLowerCase().startsWith(query));
    if (!offered.length) { close(); return; }
    chosen = Math.min(chosen, offered.length - 1);
    list.replaceChildren(...offered.map((r, index) => {
      const item = document.createElement("li");
      item.id = `canned-${index}`;
      item.setAttribute("role", "option");
      item.dataset.shortcut = r.shortcut;
      const code = document.createElement("code");
      code.textContent = `/${r.shortcut}`;
      const text = document.createElement("span");
      text.textContent = r.filled.length > 80 ? `${r.filled.slice(0, 79)}…` : r.filled;
      item.append(code, text);
      return item;
    }));
    list.hidden = false;
    box.setAttribute("aria-expanded", "true");
    mark();
  };

  const insert = (index) => {
    const { box } = parts();
    const response = offered[index];
    const match = typed();
    if (!response || !match) { close(); return; }
    const end = box.selectionStart;
    const start = end - match[2].length - 1; // the "/" and what follows it
    box.value = box.value.slice(0, start) + response.filled + box.value.slice(end);
    const caret = start + response.filled.length;
    box.setSelectionRange(caret, caret);
    close();
    box.focus();
  };

  pane.addEventListener("input", (event) => {
    if (event.target.id !== "reply-text") return;
    chosen = 0;
    show();
  });
  pane.addEventListener("keydown", (event) => {
    if (event.target.id !== "reply-text" || !offered.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      chosen = (chosen + step + offered.length) % offered.length;
      mark();
    } else if ((event.key === "Enter" && !event.ctrlKey && !event.metaKey) || event.key === "Tab") {
      event.preventDefault();
      event.stopImmediatePropagation();
      insert(chosen);
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  }, true);
  pane.addEventListener("mousedown", (event) => {
    const item = event.target.closest("#canned-list li");
    if (!item) return;
    event.preventDefault(); // keep the caret in the reply box
    insert([...item.parentElement.children].indexOf(item));
  });
  pane.addEventListener("focusout", (event) => {
    if (event.target.id === "reply-text") setTimeout(close, 150);
  });

  return {
    /** A new conversation is open: its responses are fetched again (they may have changed). */
    forget() { cache.clear(); close(); },
  };
}
