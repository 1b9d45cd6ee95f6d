// The flow editor: publish YAML or JSON; a refusal is shown against the block it names
// (its line in the gutter, the text selected, the block in the diagram).
import { api, flash } from "./api.js";

function blockLine(source, blockId) {
  const escaped = blockId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const patterns = [
    new RegExp(`^\\s*(-\\s*)?id:\\s*["']?${escaped}["']?\\s*(#.*)?$`),
    new RegExp(`"id"\\s*:\\s*"${escaped}"`),
  ];
  const lines = source.split("\n");
  for (const pattern of patterns) {
    const index = lines.findIndex((line) => pattern.test(line));
    if (index >= 0) return index;
  }
  return -1;
}

export function setupFlowEditor() {
  const form = document.getElementById("flow-editor");
  if (!form) return;
  const source = form.querySelector("#flow-source");
  const gutter = form.querySelector(".gutter");
  const problem = form.querySelector("#flow-problem");
  const done = form.querySelector("#flow-published");

  const numberLines = (mark = -1) => {
    const count = source.value.split("\n").length;
    gutter.innerHTML = "";
    for (let index = 0; index < count; index += 1) {
      const item = document.createElement("li");
      item.textContent = String(index + 1);
      if (index === mark) item.className = "problem";
      gutter.append(item);
    }
    gutter.scrollTop = source.scrollTop;
  };
  const clear = () => {
    problem.hidden = true;
    problem.textContent = "";
    source.removeAttribute("aria-invalid");
    document.querySelectorAll(".diagram .problem").forEach((g) => g.classList.remove("problem"));
  };
  source.addEventListener("input", () => numberLines());
  source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
  numberLines();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    done.textContent = "";
    const text = source.value;
    const type = text.trimStart().startsWith("{") ? "application/json" : "application/yaml";
    try {
      const { status, data } = await api("POST", "/api/flows", text, type);
      const version = data.version ? ` version ${data.version}` : "";
      flash(status === 202 ? "Accepted; it will show in a moment." : `Published${version}.`);
      location.assign(data.flow_id ? `/admin/flows/${data.flow_id}${data.version ? `?version=${data.version}` : ""}` : "/admin/flows");
    } catch (error) {
      const block = error.data?.block;
      let where = "";
      let line = -1;
      if (block) {
        line = blockLine(text, block);
        where = line >= 0 ? `Line ${line + 1}, block “${block}”: ` : `Block “${block}”: `;
        document.querySelector(`.diagram [data-block="${CSS.escape(block)}"]`)?.classList.add("problem");
      }
      // The API's detail names the block too ("block 'ask': ..."): say it once.
      const detail = block ? error.message.replace(/^block '[^']*': /, "") : error.message;
      problem.textContent = `${where}${detail}`;
      problem.hidden = false;
      problem.dataset.block = block ?? "";
      problem.dataset.line = line >= 0 ? String(line + 1) : "";
      source.setAttribute("aria-invalid", "true");
      numberLines(line);
      if (line >= 0) {
        const lines = text.split("\n");
        const start = lines.slice(0, line).reduce((sum, l) => sum + l.length + 1, 0);
        source.focus();
        source.setSelectionRange(start, start + lines[line].length);
        source.scrollTop = Math.max(0, (line - 3) * parseFloat(getComputedStyle(source).lineHeight));
        gutter.scrollTop = source.scrollTop;
      }
    }
  });
}
