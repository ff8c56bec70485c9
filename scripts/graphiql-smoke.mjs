// Driver of scripts/graphiql-smoke.sh: node graphiql-smoke.mjs <page url>
// <staff token> <screenshot path> <fresh profile dir>. Exits non-zero when
// the query's answer does not show, a request leaves the page's origin, or
// the console logs an error.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_PATH, 'x.js'));
const puppeteer = require('puppeteer-core');

const [pageUrl, token, shot, profile, conversation] = process.argv.slice(2);
const origin = new URL(pageUrl).origin;
const wsOrigin = origin.replace(/^http/, 'ws');

const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run',
  ],
  defaultViewport: { width: 1400, height: 900 },
});
const failures = [];
try {
  const page = await browser.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') failures.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));
  await page.goto(pageUrl, { waitUntil: 'networkidle0' });
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 20000 });

  // The query editor, and the visible headers editor (the page opens the
  // Headers tab).
  await page.evaluate((token) => {
    const editors = [...document.querySelectorAll('.CodeMirror')].map((e) => e.CodeMirror);
    const query = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;
    query.setValue('query Me {\n  me {\n    id\n    name\n    role\n  }\n}\n');
    const headers = document.querySelector(
      '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
    if (!headers) throw new Error(`no visible headers editor among ${editors.length}`);
    headers.CodeMirror.setValue(JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2));
  }, token);
  await page.click('.graphiql-execute-button');
  const answer = await page.waitForFunction(() => {
    const response = document.querySelector('.graphiql-response .CodeMirror');
    const text = response && response.CodeMirror.getValue();
    return text && text.includes('"me"') ? text : null;
  }, { timeout: 20000 });
  const text = await answer.jsonValue();
  console.log(text);
  const me = JSON.parse(text).data?.me;
  if (!me || me.role !== 'OWNER') failures.push(`unexpected answer: ${text}`);
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);

  // A subscription in GraphiQL (graphql-ws, the headers editor's token as
  // connection params), receiving a message sent by a mutation from outside.
  if (conversation) {
    const body = `graphiql ${Date.now()}`;
    await page.evaluate((conversation) => {
      document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(
        `subscription Events {\n  conversationEvents(conversationId: "${conversation}") {\n` +
        '    __typename\n    ... on PrivateMessage { body }\n  }\n}\n');
    }, conversation);
    // GraphiQL picks up the new operation's name after a debounce.
    await new Promise((r) => setTimeout(r, 1000));
    await page.click('.graphiql-execute-button');
    await new Promise((r) => setTimeout(r, 1000));
    const sent = await fetch(new URL('/graphql', pageUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: 'mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b, visibility: PRIVATE) { __typename } }',
        variables: { c: conversation, b: body },
      }),
    });
    if (!sent.ok) failures.push(`the mutation failed: ${sent.status}`);
    try {
      const event = await page.waitForFunction((body) => {
        const response = document.querySelector('.graphiql-response .CodeMirror');
        const text = response && response.CodeMirror.getValue();
        return text && text.includes(body) ? text : null;
      }, { timeout: 10000 }, body);
      console.log(`subscription: ${await event.jsonValue()}`);
    } catch (err) {
      const shown = await page.evaluate(
        () => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue());
      failures.push(`the subscription showed no event (${err.message}); response pane: ${shown}`);
    }
  }

  const foreign = requests.filter(
    (u) => !u.startsWith(origin + '/') && !u.startsWith(wsOrigin + '/') && !u.startsWith('data:'));
  console.log(`${requests.length} requests, ${foreign.length} to other origins`);
  for (const u of foreign) failures.push(`request to another origin: ${u}`);
} finally {
  await browser.close();
}
if (failures.length) {
  for (const f of failures) console.error(f);
  process.exit(1);
}
console.log('GraphiQL OK');
