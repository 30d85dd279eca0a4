// "Your devices": a user signed in with one of their own tokens lists and ends their sessions.
// The API's self-service rules apply: that user's tokens only, nothing else.
import { Api, bearerAuthorization } from "./api.js";
import { attempt, button, describe, el, input, notify, replace } from "./dom.js";
import { confirmAction } from "./confirm.js";
import { countText, deviceSections, TOKEN_COLUMNS as C } from "./devices.js";
import { mintedTokenId } from "./token.js";

const COLUMNS = [C.app, C.created, C.lastUsed, C.expires];

const HINT = "Sign in with your user id and one of your tokens (kept in this tab's memory only).";

function signIn() {
  const userInput = input("me-user", { required: true });
  const tokenInput = input("me-token", { type: "password", required: true });
  const form = el(
    "form",
    { id: "me-signin", className: "card", onsubmit: async (e) => {
      e.preventDefault();
      const api = new Api(bearerAuthorization(tokenInput.value));
      const ownId = mintedTokenId(tokenInput.value);
      tokenInput.value = "";
      const page = devicesPage(api, userInput.value, ownId);
      try {
        await page.load();
      } catch (error) {
        api.forget();
        const invalid = "This token is not valid (revoked or expired).";
        notify(error.status === 401 ? invalid : describe(error), "error");
        return;
      }
      notify("");
    } },
    el("h2", { text: "Your devices" }),
    el("p", { className: "hint", text: HINT }),
    el("label", {}, "User id", userInput),
    el("label", {}, "Your token", tokenInput),
    el("button", { type: "submit", text: "Show my devices" }),
  );
  replace(document.getElementById("main"), form);
}

function devicesPage(api, userId, ownId) {
  const main = document.getElementById("main");

  async function load() {
    const { tokens } = await api.userTokens(userId);
    const mine = (t) => t.id === ownId;
    const elsewhere = button("Sign out everywhere else", () => endAll(true), "danger");
    elsewhere.id = "end-others";
    elsewhere.hidden = ownId == null || tokens.length < 2; // needs the id of the token in use
    const everywhere = button("Sign out everywhere", () => endAll(false), "danger");
    everywhere.id = "end-all";
    const here = () => el("strong", { className: "this-device", text: "this device" });
    const device = { title: "device", cell: (t) => (mine(t) ? here() : (t.device_name ?? "—")) };
    replace(
      main,
      el("header", { className: "result-head" },
        el("h2", {}, "Devices of ",
          el("span", { id: "shown-user", className: "user-id", text: userId })),
        el("p", { id: "token-count", text: countText(tokens, "signed-in session(s)") }),
        el("div", { className: "row-actions" }, elsewhere, everywhere)),
      el("div", { id: "devices" }, deviceSections(tokens, [device, ...COLUMNS], (t) => [
        button(mine(t) ? "Sign out here" : "Sign out", () => endOne(t), "revoke-one"),
      ])),
    );
  }

  function signedOut(message) {
    api.forget();
    signIn();
    notify(message);
  }

  async function endOne(token) {
    await attempt(async () => {
      await api.revokeToken(token.id);
      if (token.id === ownId) return signedOut("Signed out on this device.");
      notify(`Signed out ${token.device_name ?? "that device"}.`);
      await load();
    });
  }

  async function endAll(keepThis) {
    const ok = await confirmAction({
      title: keepThis ? "Sign out everywhere else" : "Sign out everywhere",
      text: keepThis
        ? "Every other device is signed out; this one stays."
        : "Every device, this one included, is signed out.",
      action: "Sign out",
    });
    if (!ok) return;
    await attempt(async () => {
      const { revoked } = await api.revokeUser(userId, { keep: keepThis ? ownId : null });
      if (!keepThis) return signedOut(`Signed out everywhere (${revoked.length} session(s)).`);
      notify(`Signed out ${revoked.length} other session(s).`);
      await load();
    });
  }

  return { load };
}

attempt(async () => signIn());
