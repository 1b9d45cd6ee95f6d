// Desktop notifications and the sound, as the stream's hints say (the server decides them
// from the member's settings and the kind of event, so every client behaves the same).

const ASKED = "switchboard.notifications.asked";
let audio = null;

export function permission() {
  return "Notification" in window ? Notification.permission : "unsupported";
}

/** Ask for the browser's permission once (never again after an answer or a dismissal). */
export function askOnce() {
  if (permission() !== "default" || localStorage.getItem(ASKED)) return;
  localStorage.setItem(ASKED, "1");
  Notification.requestPermission();
}

/** Browsers only ask after a gesture: ask at the first click or key, if desktop is on. */
export function askAtFirstGesture(desktopOn) {
  const ask = () => {
    if (desktopOn()) askOnce();
    window.removeEventListener("pointerdown", ask, true);
    window.removeEventListener("keydown", ask, true);
  };
  window.addEventListener("pointerdown", ask, true);
  window.addEventListener("keydown", ask, true);
}

export function showDesktop(title, body, tag, onClick) {
  if (permission() !== "granted") return;
  const shown = new Notification(title, { body, tag });
  shown.onclick = () => { window.focus(); onClick?.(); shown.close(); };
}

/** A short two-tone chime, synthesised (no sound file to ship). */
export function chime() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  audio ??= new Context();
  if (audio.state === "suspended") audio.resume();
  const start = audio.currentTime;
  [880, 1318.5].forEach((frequency, index) => {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + index * 0.12);
    gain.gain.exponentialRampToValueAtTime(0.2, start + index * 0.12 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + index * 0.12 + 0.25);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + index * 0.12);
    tone.stop(start + index * 0.12 + 0.3);
  });
}

const TITLES = {
  "assignment.conversation_assigned": "A conversation was assigned to you",
  "assignment.conversation_transferred": "A conversation was transferred",
  "assignment.conversation_queued": "A conversation waits in the queue",
  "conversation.customer_message_received": "New message",
  "conversation.closed": "A conversation closed",
  "expiry.conversation_expired": "A conversation expired",
};

/** Obey an event's hints: a sound, a desktop notification naming the customer. */
export async function obey(kind, data, open) {
  if (data.play_sound) chime();
  if (!data.notify_desktop || permission() !== "granted") return;
  let body = "";
  if (data.conversation_id) {
    try {
      const response = await fetch(`/api/conversations/${data.conversation_id}`, { credentials: "same-origin" });
      if (response.ok) {
        const conversation = await response.json();
        const who = conversation.contact_name || conversation.contact_wa_id;
        const last = conversation.last_message?.text ?? "";
        body = last ? `${who}: ${last}` : who;
      }
    } catch { /* the title alone still says what happened */ }
  }
  showDesktop(TITLES[kind] ?? "switchboard", body, data.conversation_id ?? kind, () => {
    if (data.conversation_id) open(data.conversation_id);
  });
}
