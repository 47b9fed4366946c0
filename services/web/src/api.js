// The public GraphQL API as the screen uses it: queries over HTTP, alert transitions over the
// /graphql/ws subscription, always with the signed-in bearer token.
import { createClient } from "graphql-ws";

/** The API refused the token (expired, revoked, malformed): the screen asks for another. */
export class TokenRefused extends Error {}

const TOKEN_KEY = "argus.token";

export const savedToken = () => sessionStorage.getItem(TOKEN_KEY);
export const saveToken = (token) => sessionStorage.setItem(TOKEN_KEY, token);
export const forgetToken = () => sessionStorage.removeItem(TOKEN_KEY);

const AUTH_CODES = new Set(["unauthenticated", "invalid_token", "invalid_request"]);

export class Api {
  constructor(token) {
    this.token = token;
    this.endpoint = new URL("graphql", location.href).href;
  }

  /** The `data` of one operation; a refused token throws TokenRefused, other errors Error. */
  async query(document, variables = {}) {
    let response;
    for (let attempt = 0; ; attempt += 1) {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ query: document, variables }),
      });
      // busy: this caller's expensive queries run a few at a time; the answer says when to retry
      if (response.status !== 429 || attempt === 5) break;
      const wait = Number(response.headers.get("retry-after")) || 1;
      await new Promise((wake) => setTimeout(wake, wait * 1000));
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`the server answered ${response.status} without a GraphQL body`);
    }
    const errors = body.errors ?? [];
    if (response.status === 401 || errors.some((e) => AUTH_CODES.has(e.extensions?.code))) {
      throw new TokenRefused(errors[0]?.message ?? "the token was refused");
    }
    if (errors.length > 0) {
      throw new Error(errors.map((e) => e.message).join("; "));
    }
    return body.data;
  }

  /** Every node of a paged listing, `first` at a time (`path` names the connection in `data`). */
  async all(document, variables, path, first = 500) {
    const nodes = [];
    let after = null;
    for (;;) {
      const data = await this.query(document, { ...variables, first, after });
      const page = data[path];
      nodes.push(...page.nodes);
      if (!page.pageInfo.hasNextPage) return nodes;
      after = page.pageInfo.endCursor;
    }
  }

  /** Calls `next` with each event of a subscription, reconnecting for as long as the screen lives. */
  subscribe(document, next, { onConnected, onClosed, onRefused }) {
    const url = new URL("graphql/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const client = createClient({
      url: url.href,
      connectionParams: { Authorization: `Bearer ${this.token}` },
      lazy: false,
      retryAttempts: Infinity,
      retryWait: (retries) => new Promise((wake) => setTimeout(wake, Math.min(30_000, 1000 * 2 ** retries))),
      shouldRetry: (event) => !(event && (event.code === 4401 || event.code === 4403)),
      on: { connected: onConnected, closed: onClosed },
    });
    client.subscribe({ query: document }, {
      next: (message) => message.data && next(message.data),
      error: (error) => onRefused(error),
      complete: () => {},
    });
    return client;
  }
}
