// Building the page. Text goes in with textContent only: ids may hold any Unicode,
// "<script>" included, and must show as the characters they are. There is no innerHTML here.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c != null).map(asNode));
  return node;
}

function asNode(child) {
  return child instanceof Node ? child : document.createTextNode(String(child));
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c != null).map(asNode));
}

export function time(ms) {
  if (ms == null) return "—";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

// A table of `rows`; each column is {title, cell(row) -> text or Node, className?}.
export function table(columns, rows, rowProps = () => ({})) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, columns.map(headCell))),
    el(
      "tbody",
      {},
      rows.map((row) => el("tr", rowProps(row), columns.map((c) => el("td", {}, c.cell(row))))),
    ),
  );
}

function headCell(column) {
  return el("th", { scope: "col", className: column.className, text: column.title });
}

// A text field; secrets are `type: "password"`. No `name`: nothing a form could serialise.
export function input(id, props = {}) {
  return el("input", { id, autocomplete: "off", spellcheck: "false", ...props });
}

export function button(label, onclick, className = "") {
  return el("button", { type: "button", className, onclick, text: label });
}

// The one notice line of a page: errors and outcomes, as text.
export function notify(message, kind = "info") {
  const notice = document.getElementById("notice");
  notice.className = `notice ${kind}`;
  notice.textContent = message;
  notice.hidden = !message;
}

export function describe(error) {
  if (error.status) return `${error.status} ${error.code}: ${error.message}`;
  return error.message;
}

// Runs an action, reporting its failure in the notice line; returns whether it succeeded.
export async function attempt(action) {
  try {
    await action();
    return true;
  } catch (error) {
    notify(describe(error), "error");
    return false;
  }
}
