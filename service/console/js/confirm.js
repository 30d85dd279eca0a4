// A modal confirmation. With `typed`, the action is named and must be typed back
// (revoking every token of an app cannot be undone, so a click is not enough).
import { button, el, input as textInput } from "./dom.js";

export function confirmAction({ title, text, action, typed = null }) {
  return new Promise((resolve) => {
    const input = typed == null ? null : textInput("confirm-typed");
    const go = button(action, () => close(true), "danger");
    go.id = "confirm-go";
    go.disabled = typed != null;
    input?.addEventListener("input", () => {
      go.disabled = input.value !== typed;
    });
    const dialog = el(
      "dialog",
      { id: "confirm", "aria-labelledby": "confirm-title" },
      el("h2", { id: "confirm-title", text: title }),
      el("p", { id: "confirm-text", text }),
      typed == null ? null : el("label", {},
        el("span", {}, "Type ", el("code", { text: typed }), " to confirm:"), input),
      el("div", { className: "actions" }, button("Cancel", () => close(false)), go),
    );
    dialog.addEventListener("cancel", () => close(false));
    function close(result) {
      dialog.close();
      dialog.remove();
      resolve(result);
    }
    document.body.append(dialog);
    dialog.showModal();
  });
}
