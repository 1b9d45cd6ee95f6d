// The availability switch and the three-dot menu (Desktop notifications, Play sound, Sign
// out). Both are saved to the server, so they follow the member to another browser; a
// change made elsewhere arrives by the stream and shows here too.
import { api, toast } from "./api.js";
import { askOnce } from "./notify.js";

const WORDS = { available: "Available", unavailable: "Unavailable", offline: "Offline" };

export function setupMenu() {
  const toggle = document.getElementById("availability");
  const button = document.getElementById("menu-button");
  const menu = document.getElementById("settings-menu");
  if (!toggle || !button || !menu) return () => {};
  const items = () => [...menu.querySelectorAll('[role^="menuitem"]')];
  const setting = (name) => menu.querySelector(`[data-setting="${name}"]`);

  const showStatus = (status) => {
    toggle.dataset.status = status;
    toggle.setAttribute("aria-checked", String(status === "available"));
    toggle.querySelector(".label").textContent = WORDS[status] ?? status;
  };
  const showSettings = (me) => {
    setting("desktop").setAttribute("aria-checked", String(me.desktop_notifications));
    setting("sound").setAttribute("aria-checked", String(me.sound_notifications));
  };
  // A change made here since a read of /api/me started wins over what that read says (the
  // change's own event brings a fresh read after it).
  let changes = 0;
  const reload = async () => {
    const before = changes;
    const { data } = await api("GET", "/api/me");
    if (before !== changes) return;
    showStatus(data.status);
    showSettings(data);
  };

  toggle.addEventListener("click", async () => {
    changes += 1;
    const next = toggle.dataset.status === "available" ? "unavailable" : "available";
    const before = toggle.dataset.status;
    showStatus(next);
    try {
      await api("PUT", "/api/me/status", { status: next });
      toast(`You are ${next}.`);
    } catch (error) {
      showStatus(before);
      toast(`Could not change your availability: ${error.message}`, true);
    }
  });

  const open = (focusFirst) => {
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    if (focusFirst) items()[0].focus();
  };
  const close = (focusButton) => {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focusButton) button.focus();
  };
  button.addEventListener("click", () => (menu.hidden ? open(true) : close(false)));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); open(true); }
  });
  menu.addEventListener("keydown", (event) => {
    const all = items();
    const at = all.indexOf(document.activeElement);
    if (event.key === "Escape") { event.preventDefault(); close(true); }
    else if (event.key === "ArrowDown") { event.preventDefault(); all[(at + 1) % all.length].focus(); }
    else if (event.key === "ArrowUp") { event.preventDefault(); all[(at - 1 + all.length) % all.length].focus(); }
    else if (event.key === "Home") { event.preventDefault(); all[0].focus(); }
    else if (event.key === "End") { event.preventDefault(); all[all.length - 1].focus(); }
    else if (event.key === "Tab") close(false);
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && event.target !== button) close(false);
  });

  for (const name of ["desktop", "sound"]) {
    setting(name).addEventListener("click", async () => {
      changes += 1;
      const item = setting(name);
      const on = item.getAttribute("aria-checked") !== "true";
      item.setAttribute("aria-checked", String(on));
      const wanted = {
        desktop: setting("desktop").getAttribute("aria-checked") === "true",
        sound: setting("sound").getAttribute("aria-checked") === "true",
      };
      if (name === "desktop" && on) askOnce();
      try {
        await api("PUT", "/api/me/notifications", wanted);
        toast(`${name === "desktop" ? "Desktop notifications" : "Sound"} ${on ? "on" : "off"}.`);
      } catch (error) {
        item.setAttribute("aria-checked", String(!on));
        toast(`Could not save: ${error.message}`, true);
      }
    });
  }

  const me = document.body.dataset.memberId;
  return (kind, data) => {
    if (data.member_id === me && kind.startsWith("directory.")) reload().catch(() => {});
  };
}

export function desktopOn() {
  return document.querySelector('[data-setting="desktop"]')?.getAttribute("aria-checked") === "true";
}
