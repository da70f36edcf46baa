// Distributed mode across network namespaces (docs/DISTRIBUTED.md, "Tests"): proves that a
// worker is outbound-only. Three namespaces of the test's own, joined by veth pairs:
//
//   root (this test, the client) ── ns gw (infergate serve) ── ns nats (nats-server) ── ns wk
//          10.B.0.1         10.B.0.2   10.B.1.2        10.B.1.1   10.B.2.1        10.B.2.2
//                                                                              (infergate worker
//                                                                               + its fake)
//
// Nothing forwards between links (ip_forward=0), the gateway's namespace has no route to the
// worker's subnet, the worker's namespace only a route to the NATS subnet, and an nftables
// rule in the worker's namespace drops every new inbound connection (when `nft` is there;
// scripts/bootstrap installs it). Needs root (CAP_SYS_ADMIN): skipped with the reason
// otherwise.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { deadline, suiteScope, tempDir, waitFor, withTimeout } from './lib/harness.mjs';
import {
  ask, askStream, served, startBusGateway, startNats, startWorker, waitWorkers, withOutputs,
} from './lib/distributed.mjs';

const ID = process.pid % 100000;
const NS = { gw: `ig${ID}-gw`, nats: `ig${ID}-nats`, wk: `ig${ID}-wk` };
const NATS_PORT = 4222;

/** False when this process may create network namespaces, else why not (the skip reason). */
function netnsUnavailable() {
  if (process.platform !== 'linux') return 'network namespaces are Linux-only';
  const probe = `ig${process.pid}-probe`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
  } catch (e) {
    const why = (e.stderr?.toString() || e.message).trim();
    return `cannot create a network namespace (ip netns add: ${why}): needs root or CAP_SYS_ADMIN, and iproute2`;
  }
  execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  return false;
}

const skip = netnsUnavailable();
const HAS_NFT = !skip && (() => {
  try {
    execFileSync('nft', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

/** Runs `ip ARGS...` (synchronously; these are quick); throws with ip's stderr. */
function ip(...args) {
  try {
    return execFileSync('ip', args, { stdio: 'pipe', encoding: 'utf8' });
  } catch (e) {
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** Runs CMD ARGS inside namespace NS (synchronously); returns its stdout. */
function inNs(ns, cmd, args, input) {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe', encoding: 'utf8', input });
  } catch (e) {
    throw new Error(`ip netns exec ${ns} ${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** A second octet B for 10.B.0.0/16 that no address or route of the root namespace uses. */
function freeSubnet() {
  const used = ip('-4', '-o', 'addr') + ip('-4', 'route');
  for (let i = 0; i < 150; i++) {
    const b = 100 + ((ID + i) % 150);
    if (!used.includes(`10.${b}.`)) return b;
  }
  throw new Error('no free 10.B.0.0/16 subnet');
}

/**
 * Builds the three namespaces and their links (see the top of the file); registers their
 * removal (the namespaces, and with them every veth) with SCOPE. Returns the addresses.
 */
function buildNetwork(scope) {
  const b = freeSubnet();
  const veth = (s) => `ig${ID}${s}`; // at most 15 characters
  scope.t.after(() => {
    try {
      execFileSync('ip', ['link', 'del', veth('r')], { stdio: 'pipe' });
    } catch {}
    for (const ns of Object.values(NS)) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' });
      } catch {}
    }
  });
  for (const ns of Object.values(NS)) ip('netns', 'add', ns);
  // [end a, its namespace (null: root), address, end b, its namespace, address]
  const links = [
    [veth('r'), null, `10.${b}.0.1`, veth('g'), NS.gw, `10.${b}.0.2`],
    [veth('gn'), NS.gw, `10.${b}.1.2`, veth('ng'), NS.nats, `10.${b}.1.1`],
    [veth('nw'), NS.nats, `10.${b}.2.1`, veth('wn'), NS.wk, `10.${b}.2.2`],
  ];
  for (const [a, nsA, addrA, z, nsZ, addrZ] of links) {
    ip('link', 'add', a, 'type', 'veth', 'peer', 'name', z);
    for (const [dev, ns, addr] of [[a, nsA, addrA], [z, nsZ, addrZ]]) {
      const n = ns ? ['-n', ns] : [];
      if (ns) ip('link', 'set', dev, 'netns', ns);
      ip(...n, 'addr', 'add', `${addr}/24`, 'dev', dev);
      ip(...n, 'link', 'set', dev, 'up');
    }
  }
  for (const ns of Object.values(NS)) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    inNs(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
  }
  if (HAS_NFT) {
    // The worker's namespace accepts loopback and the answers to its own connections only.
    inNs(NS.wk, 'nft', ['-f', '-'], `table inet ig_outbound_only {
  chain input {
    type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
  }
}
`);
  }
  return {
    root: `10.${b}.0.1`, gw: `10.${b}.0.2`, gwToNats: `10.${b}.1.2`, nats: `10.${b}.1.1`,
    natsToWk: `10.${b}.2.1`, wk: `10.${b}.2.2`,
  };
}

const PROBE = `const net = require('node:net');
const [host, port, ms] = process.argv.slice(1);
const t0 = Date.now();
const done = (r) => { console.log(JSON.stringify({ ...r, ms: Date.now() - t0 })); process.exit(0); };
const s = net.connect({ host, port: Number(port) });
s.setTimeout(Number(ms), () => done({ ok: false, code: 'TIMEOUT' }));
s.once('connect', () => done({ ok: true }));
s.once('error', (e) => done({ ok: false, code: e.code }));`;

/** Tries a TCP connection from namespace NS to HOST:PORT, giving up after MS; resolves
 * {ok, code, ms}. */
function tcpProbe(ns, host, port, ms = 1500) {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', ns, process.execPath, '-e', PROBE, host, String(port), String(ms)],
      { timeout: ms + deadline(5000), encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`probe ${ns} -> ${host}:${port}: ${err.message} ${stderr}`));
        resolve(JSON.parse(stdout));
      });
  });
}

/** `ss -H OPTS` in namespace NS as [{local, peer, process}] (the State column is there
 * or not depending on OPTS: the addresses are the two fields after the two queue sizes). */
function sockets(ns, opts) {
  return inNs(ns, 'ss', ['-H', ...opts]).split('\n').filter((l) => l.trim()).map((l) => {
    const f = l.trim().split(/\s+/);
    const i = /^\d+$/.test(f[0]) ? 2 : 3;
    return { local: f[i], peer: f[i + 1], process: f.slice(i + 2).join(' '), line: l };
  });
}

/** The host part of an `ss` address ("127.0.0.1:80" → "127.0.0.1", "[::1]:80" → "::1"). */
const hostOf = (addr) => addr.slice(0, addr.lastIndexOf(':')).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1)$/;

describe('a worker in a namespace nothing can reach serves through NATS', { skip }, () => {
  const scope = suiteScope();
  let net;
  let nats;
  let worker;
  let gw;
  const procs = () => [nats, worker].filter(Boolean);
  const guarded = (body) => async (t) => {
    try {
      await body(t);
    } catch (e) {
      throw gw ? withOutputs(e, gw, procs()) : e;
    }
  };

  before(async () => {
    net = buildNetwork(scope);
    const dir = await tempDir(scope.t);
    nats = await startNats(scope.t, { host: '0.0.0.0', port: NATS_PORT, prefix: ['ip', 'netns', 'exec', NS.nats] });
    worker = await startWorker(scope.t, dir, `nats://${net.natsToWk}:${NATS_PORT}`, 'wk1', {
      flags: ['--token-us', '1000'], prefix: ['ip', 'netns', 'exec', NS.wk],
    });
    // The gateway listens on its namespace's link to the root one (so this test's clients
    // reach it), hence --insecure-no-auth; it reaches NATS over its other link.
    gw = await startBusGateway(scope.t, `nats://${net.nats}:${NATS_PORT}`, 'least-loaded', {
      host: net.gw, prefix: ['ip', 'netns', 'exec', NS.gw], args: ['--insecure-no-auth'],
    });
    await waitWorkers(gw, ['wk1']).catch((e) => {
      throw withOutputs(e, gw, procs());
    });
  });
  after(() => scope.cleanup());

  test('the gateway cannot open a TCP connection to the worker\'s namespace', guarded(async (t) => {
    // The port the worker's fake-llama-server listens on (on the worker's loopback), and two
    // ordinary ones.
    for (const port of [worker.startPort, 80, 8080]) {
      const r = await tcpProbe(NS.gw, net.wk, port);
      t.diagnostic(`gw -> ${net.wk}:${port}: ${r.code} after ${r.ms} ms`);
      assert.equal(r.ok, false, `the gateway's namespace connected to the worker's ${net.wk}:${port}`);
      assert.ok(['ENETUNREACH', 'EHOSTUNREACH', 'TIMEOUT'].includes(r.code), `connect failed with ${r.code}`);
      assert.ok(r.ms <= deadline(2500), `bounded: ${r.ms} ms`);
    }
    // Not even the NATS namespace, the one with a link to the worker's.
    const direct = await tcpProbe(NS.nats, net.wk, worker.startPort);
    t.diagnostic(`nats -> ${net.wk}:${worker.startPort}: ${direct.code} after ${direct.ms} ms (nft: ${HAS_NFT})`);
    assert.equal(direct.ok, false, 'the NATS namespace connected to the worker\'s namespace');
    assert.equal(direct.code, HAS_NFT ? 'TIMEOUT' : 'ECONNREFUSED', 'dropped by nftables, else nothing listens there');
    // The probes themselves work: the other way round the connections open.
    assert.equal((await tcpProbe(NS.gw, net.nats, NATS_PORT)).ok, true, 'gateway -> NATS');
    assert.equal((await tcpProbe(NS.wk, net.natsToWk, NATS_PORT)).ok, true, 'worker -> NATS');
    assert.equal((await tcpProbe(NS.wk, '127.0.0.1', worker.startPort)).ok, true, 'the fake on the worker\'s loopback');
  }));

  test('nothing in the worker\'s namespace listens off loopback; the worker only dials out', guarded(async () => {
    const listening = sockets(NS.wk, ['-ltnp']);
    assert.ok(listening.length >= 1, 'the fake-llama-server listens (on loopback)');
    for (const s of listening) {
      assert.match(hostOf(s.local), LOOPBACK, `a listener off loopback in the worker's namespace: ${s.line}`);
      assert.ok(!s.process.includes(`pid=${worker.pid},`), `the worker itself listens: ${s.line}`);
    }
    // The worker's TCP connections: one, from its address out to NATS.
    const mine = sockets(NS.wk, ['-tnp', 'state', 'established']).filter((s) => s.process.includes(`pid=${worker.pid},`));
    const off = mine.filter((s) => !LOOPBACK.test(hostOf(s.local)));
    assert.equal(off.length, 1, `the worker's connections off loopback: ${JSON.stringify(mine.map((s) => s.line))}`);
    assert.equal(off[0].peer, `${net.natsToWk}:${NATS_PORT}`, 'to NATS');
    assert.equal(hostOf(off[0].local), net.wk);
  }));

  test('chat requests through the gateway are served by the worker, streamed or not', guarded(async (t) => {
    const client = gw.client();
    const before = served(worker);
    const [whole, streamed] = await withTimeout(Promise.all([
      Promise.all(Array.from({ length: 20 }, (_, i) => ask(client, { messages: [{ role: 'user', content: `whole ${i}` }] }))),
      Promise.all(Array.from({ length: 10 }, (_, i) => askStream(client, { max_tokens: 6, messages: [{ role: 'user', content: `stream ${i}` }] }))),
    ]), deadline(20000), '30 requests');
    for (const r of whole) {
      assert.equal(r.choices[0].message.role, 'assistant');
      assert.equal(r.choices[0].finish_reason, 'length');
      assert.equal(r.usage.completion_tokens, 4);
    }
    for (const text of streamed) assert.equal(text.split(' ').length, 6, `a whole stream: ${JSON.stringify(text)}`);
    await waitFor(() => served(worker) === before + 30, { timeoutMs: deadline(5000), message: '30 requests at the worker\'s fake' });
    t.diagnostic(`served by wk1 over NATS: ${served(worker) - before}`);
  }));
});
