// The live stream: one native EventSource on /api/stream, authenticated by the session
// cookie (never a token in the URL). The browser reconnects by itself and resumes with
// Last-Event-ID. Events are named after the event type, so we listen to every type the
// catalogue has (the page lists them).

export function follow(onEvent) {
  const kinds = JSON.parse(document.body.dataset.streamKinds || "[]");
  const source = new EventSource("/api/stream", { withCredentials: true });
  const deliver = (kind) => (message) => {
    let data = {};
    try { data = JSON.parse(message.data); } catch { return; }
    onEvent(kind, data);
  };
  for (const kind of kinds) source.addEventListener(kind, deliver(kind));
  source.addEventListener("ready", () => { document.body.dataset.stream = "open"; });
  source.addEventListener("error", async () => {
    document.body.dataset.stream = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
    if (source.readyState === EventSource.CLOSED) {
      // A refused stream (signed out, member deactivated) does not come back by itself.
      const response = await fetch("/api/me", { credentials: "same-origin" });
      if (response.status === 401) location.assign("/sign-in");
    }
  });
  return source;
}
