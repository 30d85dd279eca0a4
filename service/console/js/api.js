// The tokenstore API as the console calls it: the same routes and rules as any client.
// The credential lives in a private field of one Api object, in this tab's memory only: never
// in localStorage, sessionStorage, a cookie or a URL. It travels in the Authorization header
// alone, so no other site can make the browser send it (no CSRF).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function basicAuthorization(clientId, secret) {
  const bytes = new TextEncoder().encode(`${clientId}:${secret}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

export function bearerAuthorization(secret) {
  return `Bearer ${secret}`;
}

const seg = encodeURIComponent; // ids may hold any Unicode, "/" and "?" included

export class Api {
  #authorization;

  constructor(authorization) {
    this.#authorization = authorization;
  }

  forget() {
    this.#authorization = null;
  }

  async call(method, path, { query = {}, body, signal } = {}) {
    const response = await this.open(method, path, { query, body, signal });
    return response.json();
  }

  // The response itself (for the event stream); an ApiError unless it is a 2xx.
  async open(method, path, { query = {}, body, signal, headers = {} } = {}) {
    if (this.#authorization == null) throw new ApiError(0, "signed_out", "signed out");
    const url = new URL(path, window.location.origin);
    for (const [name, value] of Object.entries(query)) {
      if (value != null && value !== "") url.searchParams.set(name, value);
    }
    const init = {
      method,
      signal,
      headers: { ...headers, Authorization: this.#authorization },
      credentials: "omit", // nothing ambient: only the header above
      cache: "no-store",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network", "the service cannot be reached");
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  // Valid credentials? 401 says no; any other answer (403 without `introspect`) says yes.
  // A malformed value of our own format ("tks_") is answered without a Redis call.
  async checkCredentials() {
    try {
      await this.introspect("tks_");
    } catch (error) {
      if (error.status !== 403) throw error;
    }
  }

  introspect(token) {
    return this.call("POST", "/v1/introspect", { body: { token } });
  }

  userTokens(userId, appId) {
    return this.call("GET", `/v1/users/${seg(userId)}/tokens`, { query: { app_id: appId } });
  }

  userEvents(userId) {
    return this.call("GET", `/v1/users/${seg(userId)}/events`);
  }

  revokeToken(tokenId) {
    return this.call("DELETE", `/v1/tokens/${seg(tokenId)}`);
  }

  // Every token of the user (in one app; but the one with id `keep`).
  revokeUser(userId, { appId, keep } = {}) {
    const query = { app_id: appId, except: keep };
    return this.call("DELETE", `/v1/users/${seg(userId)}/tokens`, { query });
  }

  appTokens(appId, { limit, cursor } = {}) {
    return this.call("GET", `/v1/apps/${seg(appId)}/tokens`, { query: { limit, cursor } });
  }

  revokeApp(appId) {
    return this.call("DELETE", `/v1/apps/${seg(appId)}/tokens`);
  }

  openFeed(lastEventId, signal) {
    const headers = { Accept: "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    return this.open("GET", "/v1/events", { headers, signal });
  }
}

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = response.statusText || code;
  try {
    const body = await response.json();
    code = body.error ?? code;
    message = body.message ?? message;
  } catch {
    // not JSON: keep the status
  }
  return new ApiError(response.status, code, message);
}
