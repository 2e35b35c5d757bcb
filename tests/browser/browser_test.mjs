// browser_test.mjs - MQTT.js in a real browser against ringmq's WebSocket
// listeners.
//
// Debian's Chromium runs headless under playwright-core (never a browser
// playwright downloads itself).  A page served from 127.0.0.1 loads MQTT.js'
// browser bundle and, over ws:// and wss:// (a self-signed certificate the
// test makes with openssl; the browser is told to accept it), with MQTT 3.1.1
// and 5: connects, subscribes, publishes and receives its own message.  The
// ws listener allows only the page's origin, so the same page served from
// "localhost" (another origin) must be refused.  Runs ringmq from RMQ_BINARY
// with --shards RMQ_SHARDS.  Anything missing (node modules, Chromium) is a
// failure, never a skip.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.RMQ_CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 10000;
const bundle = path.join(here, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js');

let dir, server, httpPort, broker, brokerLog = '', wsPort, wssPort, browser;

function startServer() {
  const page = '<!doctype html><meta charset="utf-8"><title>ringmq</title><script src="/mqtt.min.js"></script>';
  server = http.createServer((req, res) => {
    if (req.url === '/mqtt.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      fs.createReadStream(bundle).pipe(res);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(page);
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function startBroker(conf) {
  broker = spawn(process.env.RMQ_BINARY, ['-c', conf, '--shards', process.env.RMQ_SHARDS || '1'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const ports = [];
    const timer = setTimeout(() => reject(new Error('broker did not start:\n' + brokerLog)), WAIT_MS);
    const onData = (chunk) => {
      brokerLog += chunk;
      for (const m of String(chunk).matchAll(/listening on 127\.0\.0\.1:(\d+)/g)) ports.push(Number(m[1]));
      if (/ running/.test(brokerLog) && ports.length === 2) {
        clearTimeout(timer);
        resolve(ports);
      }
    };
    broker.stdout.on('data', onData);
    broker.stderr.on('data', onData);
    broker.on('exit', (code) => reject(new Error(`broker exited (${code}):\n${brokerLog}`)));
  });
}

before(async () => {
  assert.ok(process.env.RMQ_BINARY, 'RMQ_BINARY is not set (meson sets it)');
  assert.ok(fs.existsSync(bundle), `${bundle} is missing: run "npm ci" in tests/browser (build.sh test does)`);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (build.sh test does)`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmq-browser-'));
  const crt = path.join(dir, 'server.crt');
  const key = path.join(dir, 'server.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
  { stdio: 'ignore' });
  httpPort = await startServer();
  const conf = path.join(dir, 'ringmq.conf');
  fs.writeFileSync(conf, [
    'persistence false', 'allow_anonymous true',
    'listener 0 127.0.0.1', 'protocol websockets', `websockets_origin http://127.0.0.1:${httpPort}`,
    'listener 0 127.0.0.1', 'protocol websockets', `certfile ${crt}`, `keyfile ${key}`, '',
  ].join('\n'));
  [wsPort, wssPort] = await startBroker(conf);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.close();
  if (broker && broker.exitCode === null) {
    broker.removeAllListeners('exit');
    const exited = new Promise((resolve) => broker.on('exit', (code) => resolve(code)));
    broker.kill('SIGTERM');
    assert.equal(await exited, 0, 'the broker exits cleanly:\n' + brokerLog);
  }
});

// In the page: connect, subscribe, publish, wait for the message; returns
// what arrived, or throws the client's error.
async function roundTrip(page, url, version, clientId) {
  return page.evaluate(({ url, version, clientId, wait }) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), wait);
    const c = window.mqtt.connect(url, { protocolVersion: version, clientId, reconnectPeriod: 0, connectTimeout: wait });
    const topic = `browser/${clientId}`;
    c.on('error', (e) => { clearTimeout(timer); c.end(true); reject(new Error(String(e && e.message))); });
    c.on('close', () => { clearTimeout(timer); reject(new Error('closed')); });
    c.on('message', (t, payload) => {
      clearTimeout(timer);
      c.removeAllListeners('close');
      c.end(false, {}, () => resolve({ topic: t, payload: new TextDecoder().decode(payload) }));
    });
    c.on('connect', () => {
      c.subscribe(topic, { qos: 1 }, (err) => {
        if (err) return reject(err);
        c.publish(topic, `hello from ${clientId} `.repeat(400), { qos: 1 });
      });
    });
  }), { url, version, clientId, wait: WAIT_MS });
}

async function pageAt(host) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`http://${host}:${httpPort}/`);
  await page.waitForFunction(() => window.mqtt && typeof window.mqtt.connect === 'function');
  return page;
}

test('MQTT.js over ws and wss, MQTT 3.1.1 and 5', async () => {
  const page = await pageAt('127.0.0.1');
  const cases = [
    [`ws://127.0.0.1:${wsPort}/mqtt`, 4, 'browser-ws-4'],
    [`ws://127.0.0.1:${wsPort}/mqtt`, 5, 'browser-ws-5'],
    [`wss://localhost:${wssPort}/mqtt`, 4, 'browser-wss-4'],
    [`wss://localhost:${wssPort}/mqtt`, 5, 'browser-wss-5'],
  ];
  for (const [url, version, id] of cases) {
    const got = await roundTrip(page, url, version, id);
    assert.equal(got.topic, `browser/${id}`);
    assert.equal(got.payload, `hello from ${id} `.repeat(400));
    assert.match(brokerLog, new RegExp(`\\[client ${id}\\] connected from 127\\.0\\.0\\.1`));
  }
  await page.context().close();
});

test('a page from an origin not in websockets_origin is refused', async () => {
  const page = await pageAt('localhost');
  await assert.rejects(roundTrip(page, `ws://127.0.0.1:${wsPort}/mqtt`, 4, 'browser-foreign'));
  assert.match(brokerLog, new RegExp(`refused: 403 .*Origin http://localhost:${httpPort}`));
  await page.context().close();
});
