// The inbox and the open conversation: opened without leaving the page (the stream stays
// connected), refreshed in parts when the stream says something changed, and the actions
// (claim, reply, transfer, close) through the JSON API.
import { api, coalesce, fragment, toast } from "./api.js";
import { setupCanned } from "./canned.js";

/** How to find the focused element again in a re-rendered part (null: it was not there). */
function focusKey(part) {
  const active = document.activeElement;
  if (!active || !part.contains(active)) return null;
  if (active.id) return `#${CSS.escape(active.id)}`;
  if (active.dataset.claim) return "[data-claim]";
  if (active.dataset.retry) return `[data-retry="${CSS.escape(active.dataset.retry)}"]`;
  const line = active.closest("[data-position]");
  if (line && active.tagName === "SUMMARY") return `[data-position="${line.dataset.position}"] summary`;
  if (active.tagName === "SUMMARY") return "details.transfer summary";
  return null;
}

/** Replace ``old`` with ``fresh``; a keyboard user stays on the same control. */
function swapKeepingFocus(old, fresh) {
  const key = focusKey(old);
  old.replaceWith(fresh);
  if (key) fresh.querySelector(key)?.focus({ preventScroll: true });
}

export function setupInbox() {
  const inbox = document.getElementById("inbox");
  const pane = document.getElementById("conversation");
  const state = {
    tab: inbox.querySelector("#inbox-panel")?.dataset.tab ?? "mine",
    open: pane.querySelector("#conversation-panel")?.dataset.conversationId ?? null,
  };

  const title = () => {
    const attention = Number(inbox.querySelector("#inbox-panel")?.dataset.attention ?? 0);
    const who = pane.querySelector("#conversation-title")?.textContent.trim();
    document.title = `${attention ? `(${attention}) ` : ""}${who ? `${who} · ` : ""}Inbox · switchboard`;
  };
  const url = () => (state.open ? `/conversations/${state.open}?tab=${state.tab}` : `/?tab=${state.tab}`);

  const refreshInbox = coalesce(async () => {
    const query = new URLSearchParams({ tab: state.tab });
    if (state.open) query.set("open", state.open);
    const doc = await fragment(`/ui/inbox?${query}`);
    const fresh = doc.getElementById("inbox-panel");
    const old = inbox.querySelector("#inbox-panel");
    if (!fresh || !old) return;
    // Keep the keyboard where it was, if it was in the inbox (not, say, in the reply box).
    const active = inbox.contains(document.activeElement) ? document.activeElement : null;
    const focused = active?.closest("[data-conversation-id], [data-tab]");
    const key = focused?.dataset.conversationId ?? focused?.dataset.tab;
    old.replaceWith(fresh);
    if (key) {
      const again = fresh.querySelector(`[data-conversation-id="${key}"] .item-link, a[data-tab="${key}"]`);
      again?.focus();
    }
    title();
  });

  const historyAtBottom = () => {
    const history = pane.querySelector("#history");
    return !history || history.scrollHeight - history.scrollTop - history.clientHeight < 40;
  };
  const toBottom = () => {
    const history = pane.querySelector("#history");
    if (history) history.scrollTop = history.scrollHeight;
  };

  const markRead = async () => {
    const panel = pane.querySelector("#conversation-panel");
    if (!panel || document.visibilityState !== "visible") return;
    const count = Number(panel.dataset.messageCount);
    if (count > Number(panel.dataset.readUpTo)) {
      panel.dataset.readUpTo = String(count);
      try {
        await api("POST", `/api/conversations/${panel.dataset.conversationId}/read`, { up_to: count });
      } catch (error) {
        console.warn("could not mark as read", error);
      }
    }
  };

  const refreshConversation = coalesce(async () => {
    if (!state.open) return;
    const id = state.open;
    const doc = await fragment(`/ui/conversations/${id}`);
    const fresh = doc.getElementById("conversation-panel");
    const old = pane.querySelector("#conversation-panel");
    if (!fresh || state.open !== id) return;
    if (!old || old.dataset.conversationId !== id) {
      pane.replaceChildren(fresh);
      toBottom();
    } else {
      const stick = historyAtBottom();
      const scroll = old.querySelector("#history").scrollTop;
      const expanded = [...old.querySelectorAll("#history details[open]")].map(
        (d) => d.closest("[data-position]")?.dataset.position);
      for (const name of ["messageCount", "status"]) old.dataset[name] = fresh.dataset[name];
      old.dataset.readUpTo = String(Math.max(Number(old.dataset.readUpTo), Number(fresh.dataset.readUpTo)));
      // Leave the header alone while its transfer form is open (the agent is choosing).
      if (!old.querySelector("details.transfer[open]")) {
        swapKeepingFocus(old.querySelector("#conversation-header"), fresh.querySelector("#conversation-header"));
      }
      swapKeepingFocus(old.querySelector("#history"), fresh.querySelector("#history"));
      for (const position of expanded) {
        old.querySelector(`#history [data-position="${position}"] details`)?.setAttribute("open", "");
      }
      // The reply box keeps its draft; only whether it may be used changes.
      const composer = old.querySelector("#composer");
      const next = fresh.querySelector("#composer");
      const blocked = next.dataset.blocked;
      composer.dataset.blocked = blocked;
      composer.querySelector("textarea").disabled = Boolean(blocked);
      composer.querySelector("button[type=submit]").disabled = Boolean(blocked);
      const reason = composer.querySelector("#reply-blocked");
      reason.textContent = blocked;
      reason.hidden = !blocked;
      if (stick) toBottom(); else old.querySelector("#history").scrollTop = scroll;
    }
    title();
    markRead();
  });

  const canned = setupCanned(pane, () => state.open);
  // The Idempotency-Key of the reply being written: kept while a send fails (a retry reuses
  // it, so a request that timed out after all never reaches the customer twice), renewed
  // once a send was answered or the text changes.
  const replyKey = { text: null, key: null };
  const keyFor = (text) => {
    if (replyKey.text !== text) {
      replyKey.text = text;
      replyKey.key = crypto.randomUUID();
    }
    return replyKey.key;
  };

  const openConversation = async (id, push = true) => {
    if (state.open !== id) canned.forget();
    state.open = id;
    if (push) history.pushState({ open: id, tab: state.tab }, "", url());
    await refreshConversation();
    refreshInbox();
    pane.querySelector("#conversation-title")?.setAttribute("tabindex", "-1");
  };

  const switchTab = (tab) => {
    state.tab = tab;
    history.pushState({ open: state.open, tab }, "", url());
    refreshInbox();
  };

  window.addEventListener("popstate", (event) => {
    state.tab = event.state?.tab ?? new URLSearchParams(location.search).get("tab") ?? "mine";
    const id = event.state?.open ?? null;
    if (id) openConversation(id, false);
    else { state.open = null; location.reload(); }
  });

  const claim = async (id) => {
    try {
      await api("POST", `/api/conversations/${id}/claim`);
      toast("Claimed: the conversation is yours.");
      state.tab = "mine";
      await openConversation(id);
    } catch (error) {
      if (error.status === 409) toast(`Too late: ${error.message}.`, true);
      else toast(`Could not claim it: ${error.message}`, true);
      refreshInbox();
      if (state.open === id) refreshConversation();
    }
  };

  inbox.addEventListener("click", (event) => {
    const claimButton = event.target.closest("[data-claim]");
    if (claimButton) { event.preventDefault(); claim(claimButton.dataset.claim); return; }
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    const tabLink = event.target.closest("a[data-tab]");
    if (tabLink) { event.preventDefault(); switchTab(tabLink.dataset.tab); return; }
    const item = event.target.closest(".item-link");
    if (item) {
      event.preventDefault();
      openConversation(item.closest("[data-conversation-id]").dataset.conversationId).then(() =>
        pane.querySelector("#conversation-title")?.focus({ preventScroll: true }));
    }
  });

  pane.addEventListener("click", async (event) => {
    const claimButton = event.target.closest("[data-claim]");
    if (claimButton) { claim(claimButton.dataset.claim); return; }
    if (event.target.closest("#close-conversation")) {
      if (!confirm("Close this conversation? The customer's next message starts a new one.")) return;
      try {
        await api("POST", `/api/conversations/${state.open}/close`);
        toast("Closing the conversation…");
      } catch (error) {
        toast(`Could not close it: ${error.message}`, true);
      }
      return;
    }
    const retry = event.target.closest("[data-retry]");
    if (retry) {
      try {
        await api("POST", `/api/conversations/${state.open}/messages/${retry.dataset.retry}/retry`);
        toast("Sending it again…");
      } catch (error) {
        toast(`Could not send it again: ${error.message}`, true);
      }
    }
  });

  pane.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    if (form.id === "composer") {
      const box = form.querySelector("textarea");
      const text = box.value.trim();
      if (!text) return;
      const send = form.querySelector("button[type=submit]");
      send.disabled = true;
      try {
        await api("POST", `/api/conversations/${state.open}/messages`, { text }, undefined,
          { "Idempotency-Key": keyFor(`${state.open}\n${text}`) });
        replyKey.text = null;
        box.value = "";
        await refreshConversation();
        toBottom(); // the agent looks for what it just sent
      } catch (error) {
        toast(`Not sent: ${error.message}`, true);
      } finally {
        send.disabled = Boolean(form.dataset.blocked);
        box.focus();
      }
    } else if (form.id === "note-form") {
      const box = form.querySelector("textarea");
      const text = box.value.trim();
      if (!text) return;
      const add = form.querySelector("button[type=submit]");
      add.disabled = true;
      try {
        await api("POST", `/api/conversations/${state.open}/notes`, { text });
        box.value = "";
        toast("Note added (members only).");
        await refreshConversation();
        toBottom();
      } catch (error) {
        toast(`Note not added: ${error.message}`, true);
      } finally {
        add.disabled = false;
      }
    } else if (form.id === "transfer-form") {
      const [kind, id] = form.elements.target.value.split(":");
      const body = { note: form.elements.note.value };
      body[kind === "member" ? "member_id" : "group_id"] = id;
      const chosen = form.elements.target.selectedOptions[0]?.textContent ?? "";
      try {
        await api("POST", `/api/conversations/${state.open}/transfer`, body);
        form.closest("details").open = false;
        toast(`Transferred to ${chosen.replace(/ \(.*\)$/, "")}.`);
        refreshConversation();
        refreshInbox();
      } catch (error) {
        toast(`Could not transfer it: ${error.message}`, true);
      }
    }
  });

  pane.addEventListener("keydown", (event) => {
    if (event.target.id === "reply-text" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      event.target.form.requestSubmit();
    }
  });

  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("focus", markRead);
  history.replaceState({ open: state.open, tab: state.tab }, "", location.href);
  toBottom();
  markRead();
  title();

  return {
    open: openConversation,
    onEvent(kind, data) {
      refreshInbox();
      if (data.conversation_id && data.conversation_id === state.open && kind !== "conversation.read") {
        refreshConversation();
      }
    },
  };
}
