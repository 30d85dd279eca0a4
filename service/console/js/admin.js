// The admin console: sign in with an API client's id and secret, then find a user, look at an
// app, or watch the revocation feed. What it shows and allows is what the API allows that
// client (its permissions and apps); the console adds no rule of its own.
import { Api, basicAuthorization } from "./api.js";
import { attempt, button, describe, el, input, notify, replace } from "./dom.js";
import { appView } from "./views/app.js";
import { feedView } from "./views/feed.js";
import { userView } from "./views/user.js";

const TABS = [
  ["user", "Users"],
  ["app", "Apps"],
  ["feed", "Live feed"],
];

const HINT = "The secret stays in this tab's memory: reloading or closing the tab signs you out.";

function signIn() {
  const idInput = input("client-id", { required: true });
  const secretInput = input("client-secret", { type: "password", required: true });
  const form = el(
    "form",
    { id: "signin", className: "card", onsubmit: async (e) => {
      e.preventDefault();
      const api = new Api(basicAuthorization(idInput.value, secretInput.value));
      secretInput.value = ""; // kept by the Api object only
      try {
        await api.checkCredentials();
      } catch (error) {
        api.forget();
        notify(error.status === 401 ? "Wrong client id or secret." : describe(error), "error");
        return;
      }
      notify("");
      signedIn(api, idInput.value);
    } },
    el("h2", { text: "Sign in with an API client" }),
    el("p", { className: "hint", text: HINT }),
    el("label", {}, "Client id", idInput),
    el("label", {}, "Secret", secretInput),
    el("button", { type: "submit", text: "Sign in" }),
  );
  replace(document.getElementById("main"), form);
  idInput.focus();
}

function signedIn(api, clientId) {
  const feed = feedView(api);
  const views = { user: userView(api), app: appView(api), feed: feed.view };
  const tabs = TABS.map(([name, label]) => {
    const tab = button(label, () => select(name), "tab");
    tab.id = `tab-${name}`;
    return tab;
  });
  function select(name) {
    for (const [i, [tabName]] of TABS.entries()) {
      views[tabName].hidden = tabName !== name;
      tabs[i].setAttribute("aria-selected", String(tabName === name));
    }
    if (name === "feed") feed.start();
  }
  const signOut = button("Sign out", () => {
    feed.stop();
    api.forget();
    window.location.replace("/console/"); // a fresh page: nothing of this session is left
  });
  signOut.id = "sign-out";
  replace(
    document.getElementById("session"),
    el("span", {}, "Signed in as ", el("strong", { id: "signed-in-as", text: clientId })),
    signOut,
  );
  replace(
    document.getElementById("main"),
    el("nav", { className: "tabs", role: "tablist" }, tabs),
    Object.values(views),
  );
  select("user");
}

attempt(async () => signIn());
