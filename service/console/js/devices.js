// A user's tokens grouped by login (their `session_id`: a token and its rotations), shared by
// the admin console and the "your devices" page; records without one group by device and client.
import { el, table, time } from "./dom.js";

// The API lists a user's tokens whole; a page shows the newest MAX_SHOWN of them, so that a
// user holding a huge number of tokens cannot stall the tab (revoke all still reaches all).
export const MAX_SHOWN = 500;

export function countText(tokens, noun) {
  const more = tokens.length > MAX_SHOWN ? ` (the newest ${MAX_SHOWN} shown)` : "";
  return `${tokens.length} ${noun}${more}`;
}

export function groupKey(token) {
  if (token.session_id != null) return `session ${token.session_id}`;
  return JSON.stringify([token.device_name ?? null, token.client_name ?? token.app_id]);
}

// [{label, tokens}] in the order of each group's newest token (the API lists newest first).
export function groupByDevice(tokens) {
  const groups = new Map();
  for (const token of tokens) {
    const key = groupKey(token);
    if (!groups.has(key)) {
      const device = token.device_name ?? "unnamed device";
      groups.set(key, { label: `${device} · ${token.client_name ?? token.app_id}`, tokens: [] });
    }
    groups.get(key).tokens.push(token);
  }
  return [...groups.values()];
}

export const TOKEN_COLUMNS = {
  id: { title: "token id", className: "col-id", cell: (t) => el("code", { text: t.id }) },
  user: { title: "user", cell: (t) => el("span", { className: "user-id", text: t.user_id }) },
  app: { title: "app", cell: (t) => t.app_id },
  client: { title: "client", cell: (t) => t.client_name ?? "—" },
  device: { title: "device", cell: (t) => t.device_name ?? "—" },
  type: { title: "type", cell: (t) => t.type },
  scopes: { title: "scopes", cell: (t) => t.scopes.join(" ") || "—" },
  created: { title: "created", className: "col-time", cell: (t) => time(t.created_at) },
  expires: { title: "expires", className: "col-time", cell: (t) => time(t.expires_at) },
  // Uses are recorded only for tokens with an idle lifetime; for others it is their creation.
  lastUsed: {
    title: "last used",
    className: "col-time",
    cell: (t) => (t.idle_ttl ? time(t.last_used_at) : "—"),
  },
};

// One section per device: a heading and a table of its tokens, with `actions(token)` (a list
// of buttons) in the last column.
export function deviceSections(tokens, columns, actions) {
  const actionCell = (t) => el("div", { className: "row-actions" }, actions(t));
  const withActions = [...columns, { title: "", className: "col-actions", cell: actionCell }];
  return groupByDevice(tokens.slice(0, MAX_SHOWN)).map((group) =>
    el(
      "section",
      { className: "device" },
      el("h3", { text: group.label }),
      table(withActions, group.tokens, (t) => ({ dataset: { tokenId: t.id } })),
    ),
  );
}
