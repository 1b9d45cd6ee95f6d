// The agent suite's entry module: every page follows the stream (notifications and the
// status switch work everywhere); the inbox and the admin pages add their own parts.
import { showFlash } from "./api.js";
import { liveAdminPage, setupAdmin, setupNumbers } from "./admin.js";
import { setupFlowEditor } from "./flow_editor.js";
import { setupInbox } from "./inbox.js";
import { desktopOn, setupMenu } from "./menu.js";
import { askAtFirstGesture, obey } from "./notify.js";
import { follow } from "./stream.js";

const page = document.body.dataset.page;
const listeners = [setupMenu()];
let inbox = null;
if (page === "inbox") {
  inbox = setupInbox();
  listeners.push(inbox.onEvent);
} else if (page) {
  setupAdmin();
  listeners.push(liveAdminPage(page));
  if (page === "numbers") setupNumbers();
  if (page === "flow") setupFlowEditor();
}
showFlash();
askAtFirstGesture(desktopOn);

const open = (id) => {
  if (inbox) inbox.open(id);
  else location.assign(`/conversations/${id}`);
};
if (page) {
  follow((kind, data) => {
    obey(kind, data, open);
    for (const listener of listeners) listener(kind, data);
  });
}
