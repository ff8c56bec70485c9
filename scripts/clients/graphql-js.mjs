// graphql-js and graphql-ws against a running server (a client nobody here
// wrote): the standard introspection query, buildClientSchema and
// validateSchema, a query with a token, and a subscription that receives
// the event a mutation causes. Prints what each step showed; exits non-zero
// on the first failure.
//
//   npm install graphql graphql-ws ws   (in a directory outside the repo)
//   NODE_PATH=that/node_modules node scripts/clients/graphql-js.mjs \
//     http://127.0.0.1:8080 OWNER_TOKEN CONVERSATION_ID
//
// NODE_TLS_REJECT_UNAUTHORIZED=0 lets it through a self-signed proxy.
import { createRequire } from "node:module";
const require = createRequire(process.env.NODE_PATH ? process.env.NODE_PATH + "/" : import.meta.url);
const { getIntrospectionQuery, buildClientSchema, validateSchema, printSchema } = require("graphql");
const { createClient } = require("graphql-ws");
const WebSocket = require("ws");

const [base, token, conversation] = process.argv.slice(2);
if (!base || !token || !conversation) {
  console.error("usage: graphql-js.mjs BASE_URL STAFF_TOKEN CONVERSATION_ID");
  process.exit(2);
}
const http = `${base.replace(/\/$/, "")}/graphql`;
const ws = http.replace(/^http/, "ws");
const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };

async function post(query, variables) {
  const res = await fetch(http, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  if (res.status !== 200 || body.errors) throw new Error(`${res.status} ${JSON.stringify(body)}`);
  return body.data;
}

const introspection = await post(getIntrospectionQuery());
const schema = buildClientSchema(introspection);
const errors = validateSchema(schema);
console.log(`introspection: ${Object.keys(schema.getTypeMap()).length} types, ${printSchema(schema).split("\n").length} SDL lines; validateSchema: ${errors.length} errors`);
if (errors.length) { console.log(errors.map(String).join("\n")); process.exit(1); }

const me = await post("{ me { name role } }");
console.log(`query { me }: ${JSON.stringify(me)}`);

const client = createClient({ url: ws, webSocketImpl: WebSocket, connectionParams: { Authorization: `Bearer ${token}` } });
const body = `graphql-js ${Date.now()}`;
const received = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("no event within 10 s")), 10_000);
  client.subscribe(
    { query: "subscription($c: ID!) { conversationEvents(conversationId: $c) { __typename ... on PrivateMessage { body } } }", variables: { c: conversation } },
    {
      next: (value) => { if (JSON.stringify(value).includes(body)) { clearTimeout(timer); resolve(value); } },
      error: (err) => { clearTimeout(timer); reject(err instanceof Error ? err : new Error(JSON.stringify(err))); },
      complete: () => {},
    },
  );
});
// The subscription is in place once the server acknowledged it; give it a moment.
await new Promise((r) => setTimeout(r, 500));
await post("mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b, visibility: PRIVATE) { __typename } }", { c: conversation, b: body });
const event = await received;
console.log(`subscription over graphql-ws: ${JSON.stringify(event)}`);
await client.dispose();
