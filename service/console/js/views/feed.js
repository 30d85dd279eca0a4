// The revocation feed, live: the newest events first, the last MAX_ROWS kept.
import { el, time } from "../dom.js";
import { FeedFollower } from "../sse.js";

const MAX_ROWS = 200;
const KINDS = new Set(["token", "user", "app"]);
const HEADINGS = ["when", "kind", "app", "user", "what"];

export function feedView(api) {
  const state = el("p", { id: "feed-state", className: "feed-state", text: "not started" });
  const rows = el("tbody", { id: "feed-rows" });
  const follower = new FeedFollower(api, {
    onState(name, detail) {
      state.dataset.state = name;
      state.textContent = detail ? `${name}: ${detail.message ?? detail}` : name;
    },
    onMessage(message) {
      if (message.event === "reset") {
        rows.prepend(row("reset", { at: Date.now() }, "events were lost; start over"));
      }
      if (!KINDS.has(message.event)) return;
      const data = JSON.parse(message.data);
      rows.prepend(row(message.event, data, describe(data)));
      while (rows.childElementCount > MAX_ROWS) rows.lastElementChild.remove();
    },
  });
  let started = false;
  const view = el(
    "section",
    { id: "view-feed", className: "view" },
    el("h2", { text: "Revocation feed (live)" }),
    state,
    el("table", {},
      el("thead", {}, el("tr", {}, HEADINGS.map((t) => el("th", { scope: "col", text: t })))),
      rows),
  );
  return {
    view,
    start() {
      if (!started) follower.run();
      started = true;
    },
    stop: () => follower.stop(),
  };
}

function row(kind, data, what) {
  return el("tr", { className: `event ${kind}`, dataset: { kind } },
    el("td", { text: time(data.at) }),
    el("td", { text: kind }),
    el("td", { className: "app-id", text: data.app_id ?? "" }),
    el("td", { className: "user-id", text: data.user_id ?? "" }),
    el("td", { text: what }));
}

function describe(data) {
  if (data.kind === "app") return `every token created before ${time(data.revoked_before)}`;
  const ids = data.ids ?? [];
  const scope = data.scope === "user_app" ? " (one app)" : "";
  return ids.length === 1 ? `token ${ids[0]}${scope}` : `${ids.length} tokens${scope}`;
}

