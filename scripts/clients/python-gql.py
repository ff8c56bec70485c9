"""Python's `gql` against a running server (a client nobody here wrote): the
schema fetched by introspection, a query with a token, and a subscription
(graphql-transport-ws) that receives the event a mutation causes. Prints what
each step showed; exits non-zero on the first failure.

    python3 -m venv /tmp/gql-venv && /tmp/gql-venv/bin/pip install "gql[all]"
    /tmp/gql-venv/bin/python scripts/clients/python-gql.py \
        http://127.0.0.1:8080 OWNER_TOKEN CONVERSATION_ID [CA.pem]

A CA file (e.g. a self-signed proxy's certificate) is trusted for https/wss.
"""

import asyncio
import ssl
import sys
import time

from gql import Client, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.websockets import WebsocketsTransport
from graphql import print_schema


async def main(base: str, token: str, conversation: str, ca: str | None) -> None:
    base = base.rstrip("/")
    context = ssl.create_default_context(cafile=ca) if ca else None
    auth = {"Authorization": f"Bearer {token}"}
    http = AIOHTTPTransport(url=f"{base}/graphql", headers=auth, ssl=context or True)
    async with Client(transport=http, fetch_schema_from_transport=True) as session:
        schema = session.client.schema
        lines = len(print_schema(schema).splitlines())
        print(f"schema fetched: {len(schema.type_map)} types, {lines} SDL lines")
        me = await session.execute(gql("{ me { name role } }"))
        print(f"query {{ me }}: {me}")

        ws_url = f"{base}/graphql".replace("http", "ws", 1)
        ws = WebsocketsTransport(
            url=ws_url,
            init_payload=auth,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            ssl=context if ws_url.startswith("wss") else False,
        )
        body = f"python-gql {time.time_ns()}"
        subscription = gql(
            "subscription($c: ID!) { conversationEvents(conversationId: $c) "
            "{ __typename ... on PrivateMessage { body } } }"
        )
        mutation = gql(
            "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, "
            "body: $b, visibility: PRIVATE) { __typename } }"
        )
        async with Client(transport=ws) as live:

            async def first_match() -> dict:
                async for event in live.subscribe(
                    subscription, variable_values={"c": conversation}
                ):
                    if body in str(event):
                        return event
                raise RuntimeError("the subscription ended without the event")

            waiting = asyncio.create_task(first_match())
            await asyncio.sleep(0.5)
            await session.execute(mutation, variable_values={"c": conversation, "b": body})
            event = await asyncio.wait_for(waiting, timeout=10)
            print(f"subscription over graphql-transport-ws: {event}")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: python-gql.py BASE_URL STAFF_TOKEN CONVERSATION_ID [CA.pem]")
    asyncio.run(main(*sys.argv[1:4], sys.argv[4] if len(sys.argv) == 5 else None))
