// Starts GraphiQL on the endpoint named by #graphiql's data-endpoint: queries
// and mutations POST to it, subscriptions use graphql-transport-ws on the
// same path (graphql-ws, bundled in GraphiQL's UMD build). The headers
// editor's JSON goes with every request and, for subscriptions, as the
// connection_init payload, so {"Authorization": "Bearer <token>"} works for
// both. Nothing here names another host.
(function () {
  var root = document.getElementById('graphiql');
  var endpoint = root.getAttribute('data-endpoint');
  var title = root.getAttribute('data-title');
  var url = new URL(endpoint, window.location.href);
  var ws = new URL(endpoint, window.location.href);
  ws.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';

  var example = title === 'customer'
    ? 'query Conversation {\n  conversation {\n    id\n    status\n    messages(last: 20) {\n      edges { node { at author authorName body } }\n    }\n  }\n}\n'
    : 'query Me {\n  me {\n    id\n    name\n    role\n  }\n}\n';
  var defaultQuery =
    '# Backchannel ' + title + ' GraphQL at ' + endpoint + '\n' +
    '#\n' +
    '# Paste your token in the Headers tab below:\n' +
    '#   {"Authorization": "Bearer <token>"}\n' +
    '# (`backchannel serve --demo` prints one per role; subscriptions\n' +
    '# send the same headers when their websocket opens.)\n\n' + example;

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({
        url: url.toString(),
        subscriptionUrl: ws.toString(),
      }),
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: 'headers',
    })
  );
})();
