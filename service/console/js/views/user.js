// Find a user: their tokens by device (revoke one, all, all but one) and their audit events.
import { attempt, button, el, input, notify, replace, table, time } from "../dom.js";
import { confirmAction } from "../confirm.js";
import { countText, deviceSections, TOKEN_COLUMNS as C } from "../devices.js";

const COLUMNS = [C.id, C.app, C.type, C.scopes, C.created, C.lastUsed, C.expires];

export function userView(api) {
  const userInput = input("user-id", { required: true });
  const appInput = input("user-app", { placeholder: "every app" });
  const result = el("div", { id: "user-result" });
  let shown = null; // {userId, appId} on display

  async function show(userId, appId) {
    const [{ tokens }, events] = await Promise.all([
      api.userTokens(userId, appId),
      api.userEvents(userId).catch((error) => error), // a client may list without events
    ]);
    shown = { userId, appId };
    replace(result, summary(userId, appId, tokens), tokenSections(tokens), eventSection(events));
  }

  const refresh = () => show(shown.userId, shown.appId);

  function summary(userId, appId, tokens) {
    const where = appId ? ` in app ${appId}` : "";
    const revokeAll = button(`Revoke all (${tokens.length})`, async () => {
      const ok = await confirmAction({
        title: "Revoke all tokens",
        text: `Revoke every token of user ${userId}${where}? Each device is signed out.`,
        action: "Revoke all",
      });
      if (!ok) return;
      if (await attempt(async () => {
        const { revoked } = await api.revokeUser(userId, { appId });
        notify(`Revoked ${revoked.length} token(s) of ${userId}.`);
      })) await attempt(refresh);
    }, "danger");
    revokeAll.id = "revoke-all";
    revokeAll.disabled = tokens.length === 0;
    return el(
      "header",
      { className: "result-head" },
      el("h2", {}, "User ", el("span", { id: "shown-user", className: "user-id", text: userId })),
      el("p", { id: "token-count", text: countText(tokens, `live token(s)${where}`) }),
      revokeAll,
    );
  }

  function tokenSections(tokens) {
    if (tokens.length === 0) return el("p", { className: "empty", text: "No live tokens." });
    return el("div", { id: "devices" }, deviceSections(tokens, COLUMNS, (t) => [
      button("Revoke", () => revokeOne(t), "revoke-one"),
      button("Keep only this", () => keepOnly(t), "keep-only"),
    ]));
  }

  async function revokeOne(token) {
    if (await attempt(async () => {
      const { revoked } = await api.revokeToken(token.id);
      notify(revoked.length ? `Revoked token ${token.id}.` : `Token ${token.id} was gone already.`);
    })) await attempt(refresh);
  }

  async function keepOnly(token) {
    const { userId, appId } = shown;
    const ok = await confirmAction({
      title: "Revoke all but one",
      text: `Revoke every other token of user ${userId}${appId ? ` in app ${appId}` : ""}, `
        + `keeping ${token.id}?`,
      action: "Revoke the others",
    });
    if (!ok) return;
    if (await attempt(async () => {
      const { revoked } = await api.revokeUser(userId, { appId, keep: token.id });
      notify(`Revoked ${revoked.length} token(s); kept ${token.id}.`);
    })) await attempt(refresh);
  }

  const form = el(
    "form",
    { id: "user-form", className: "search", onsubmit: (e) => {
      e.preventDefault();
      notify("");
      attempt(() => show(userInput.value, appInput.value.trim() || null));
    } },
    el("label", {}, "User id", userInput),
    el("label", {}, "Only app", appInput),
    el("button", { type: "submit", text: "Find" }),
  );
  return el("section", { id: "view-user", className: "view" }, form, result);
}

const EVENT_COLUMNS = [
  { title: "when", cell: (e) => time(e.at) },
  { title: "what", cell: (e) => (e.scope === "user_app" ? `${e.kind} (one app)` : e.kind) },
  { title: "app", cell: (e) => e.app_id },
  { title: "tokens", cell: (e) => String(e.ids.length) },
  { title: "by", cell: (e) => (e.via ? `${e.actor} (token ${e.via})` : e.actor) },
];

function eventSection(events) {
  const body = events instanceof Error
    ? el("p", { className: "empty", text: `Events not shown: ${events.message}` })
    : events.events.length === 0
      ? el("p", { className: "empty", text: "No revocations yet." })
      : table(EVENT_COLUMNS, events.events);
  const heading = el("h3", { text: "Recent revocations (audit)" });
  return el("section", { id: "user-events" }, heading, body);
}
