// GraphiQL against this server's /graphql and /graphql/ws; the token the NOC screen signed in
// with (this tab's session storage) is offered as the Authorization header.
(function () {
  const token = sessionStorage.getItem("argus.token");
  const base = new URL(".", location.href);
  const socket = new URL("graphql/ws", base);
  socket.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const fetcher = GraphiQL.createFetcher({
    url: new URL("graphql", base).href,
    subscriptionUrl: socket.href,
    headers,
    wsConnectionParams: headers,
  });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultHeaders: JSON.stringify(headers, null, 2),
      defaultQuery: "{\n  wireguardStats { peers { total active stale } }\n}\n",
    }),
  );
})();
