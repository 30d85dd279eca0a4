// An app's tokens, one page at a time (never the whole app in memory), and revoking them all.
import { attempt, button, el, input, notify, replace, table, time } from "../dom.js";
import { confirmAction } from "../confirm.js";
import { TOKEN_COLUMNS as C } from "../devices.js";

const PAGE_SIZE = 50;
const COLUMNS = [C.id, C.user, C.device, C.client, C.created, C.expires];

export function appView(api) {
  const appInput = input("app-id", { required: true });
  const result = el("div", { id: "app-result" });
  let appId = null;
  let cursors = [null]; // the cursor of each page shown so far: "previous" goes back one

  async function showPage() {
    const cursor = cursors.at(-1);
    const page = await api.appTokens(appId, { limit: PAGE_SIZE, cursor });
    const rows = page.tokens.length === 0
      ? el("p", { className: "empty", text: "No live tokens on this page." })
      : table([...COLUMNS, { title: "", cell: revokeButton }], page.tokens,
        (t) => ({ dataset: { tokenId: t.id } }));
    const previous = button("Previous", () => { cursors.pop(); attempt(showPage); });
    previous.disabled = cursors.length === 1;
    const next = button("Next", () => { cursors.push(page.next_cursor); attempt(showPage); });
    next.disabled = page.next_cursor == null;
    next.id = "next-page";
    replace(
      result,
      el("header", { className: "result-head" },
        el("h2", {}, "App ", el("span", { id: "shown-app", text: appId })),
        revokeAllButton()),
      rows,
      el("nav", { className: "pager" }, previous,
        el("span", { id: "page-number", text: `page ${cursors.length}` }), next),
    );
  }

  function revokeAllButton() {
    const shownApp = appId;
    const revoke = button(`Revoke every token of ${shownApp}`, async () => {
      const ok = await confirmAction({
        title: "Revoke every token of an app",
        text: `Every token of app ${shownApp}, of every user, stops working at once. `
          + "This cannot be undone.",
        action: `Revoke all of ${shownApp}`,
        typed: shownApp,
      });
      if (!ok) return;
      if (await attempt(async () => {
        const { revoked_before } = await api.revokeApp(shownApp);
        notify(`Every token of ${shownApp} issued before ${time(revoked_before)} is revoked.`);
      })) { cursors = [null]; await attempt(showPage); }
    }, "danger");
    revoke.id = "revoke-app";
    return revoke;
  }

  const revokeButton = (token) => button("Revoke", () => revokeOne(token), "revoke-one");

  async function revokeOne(token) {
    if (await attempt(async () => {
      await api.revokeToken(token.id);
      notify(`Revoked token ${token.id}.`);
    })) await attempt(showPage);
  }

  const form = el(
    "form",
    { id: "app-form", className: "search", onsubmit: (e) => {
      e.preventDefault();
      notify("");
      appId = appInput.value;
      cursors = [null];
      attempt(showPage);
    } },
    el("label", {}, "App id", appInput),
    el("button", { type: "submit", text: "Show tokens" }),
  );
  return el("section", { id: "view-app", className: "view" }, form, result);
}
