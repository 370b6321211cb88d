// `npm start` end to end, run as a person runs it: its output (three pulls,
// nodes 2 and 3 served by peers and not the upstream, the upstream sending the
// image once, every byte accounted for, `mirra shards`' table), exit 0 and
// nothing of it left afterwards (no process with its directory on its command
// line, no directory); `--keep` staying up until Ctrl-C; and the one-line
// failures of a taken port and a missing containerd.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../support/process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEMO = join(ROOT, 'hack', 'demo.ts');
const RUN_TIMEOUT_MS = 120_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** What beforeInterrupt threw. */
  beforeInterrupt?: unknown;
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** SIGINT to the process group once stdout matches this... */
  interruptWhen?: RegExp;
  /** ...after this has looked at the running demo. */
  beforeInterrupt?: (stdout: string) => Promise<void>;
}

/** Runs the command in its own process group (as a shell runs a foreground job); SIGINT to the group once stdout matches `interruptWhen`. */
function run(command: string, args: string[], options: RunOptions = {}): Promise<Run> {
  const child = spawn(command, args, { cwd: ROOT, env: options.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const result: Run = { code: null, signal: null, stdout: '', stderr: '' };
  let interrupted = false;
  const interrupt = async (): Promise<void> => {
    await options.beforeInterrupt?.(result.stdout).catch((err: unknown) => (result.beforeInterrupt = err));
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGINT'); // Ctrl-C: the whole foreground group
  };
  child.stdout.on('data', (chunk: Buffer) => {
    result.stdout += chunk.toString();
    if (options.interruptWhen?.test(result.stdout) === true && !interrupted) {
      interrupted = true;
      void interrupt();
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (result.stderr += chunk.toString()));
  const timer = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), RUN_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ...result, code, signal });
    });
  });
}

/** Pids of the processes whose command line mentions the text (e.g. the demo's directory). */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) pids.push(Number(entry));
  }
  return pids;
}

/** The demo's working directory, from its output. */
function workingDir(out: string): string {
  const dir = /^ {2}working dir (\/\S+)$/m.exec(out)?.[1];
  assert.ok(dir !== undefined, `the demo names its working dir:\n${out}`);
  return dir;
}

async function assertNothingLeft(dir: string): Promise<void> {
  await assert.rejects(readdir(dir), { code: 'ENOENT' }, `${dir} was removed`);
  // The exit hooks have killed what was left by the time the demo exits; give the kernel a moment to reap.
  await waitFor(`no process with ${dir} on its command line`, async () => (await processesMentioning(dir)).length === 0, 5000, 100);
}

/** Cells of a table row: separated by two spaces or more. */
function cells(line: string): string[] {
  return line.trim().split(/\s{2,}/);
}

function listen(host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => resolve(server));
  });
}

describe('npm start (the demo)', { timeout: 4 * RUN_TIMEOUT_MS }, () => {
  test('three pulls; nodes 2 and 3 get every layer from a peer, the upstream sends the image once; mirra shards; exit 0 and nothing left', async (t) => {
    const started = performance.now();
    const result = await run('npm', ['start']);
    t.diagnostic(`npm start: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const out = result.stdout;
    assert.equal(result.code, 0, `${out}\n${result.stderr}`);

    const pulls = out.split('\n').filter((line) => /^ {2}node-[123] {2}\d+\.\d\d s {2}/.test(line));
    assert.deepEqual(
      pulls.map((line) => cells(line)[0]),
      ['node-1', 'node-2', 'node-3'],
      out,
    );
    assert.match(pulls[0] ?? '', /from the upstream\s+upstream \d/);
    for (const line of pulls.slice(1)) assert.match(line, /\d+\.\dx faster\s+node-\d \d/, line);

    const layers = out.split('\n').filter((line) => /^ {2}layer \d/.test(line));
    assert.equal(layers.length, 3, out);
    for (const row of [...layers, ...out.split('\n').filter((line) => /^ {2}(manifest|config) /.test(line))]) {
      const [, , node1, node2, node3] = cells(row);
      assert.equal(node1, 'upstream', row);
      for (const cell of [node2, node3]) assert.match(cell ?? '', /^node-\d \((agent|307)\)$/, `from one peer, no byte from the upstream: ${row}`);
    }
    assert.match(out, /^ {2}every byte accounted for: each node received the image's [\d.]+ MiB; the upstream sent [\d.]+ MiB in all, the image once$/m);

    assert.match(out, /^ {2}NODE\s+POD\s+READY\s+KEYS\s+OWNED\s+POSTINGS\s+LAST UPDATE$/m, 'mirra shards printed its table');
    const shardRows = out.split('\n').filter((line) => /^ {2}node-[123]\s+mirra-\w{5}\s+true\s+[1-9]\d*\s+\d+/.test(line));
    assert.equal(shardRows.length, 3, 'mirra shards: a row per agent, ready, with its keys');
    const annotated = out.split('\n').filter((line) => /^ {2}node-[123]\s+mirra-\w{5}\s+v=2;keys=[1-9]\d*;owned=\d+;/.test(line));
    assert.equal(annotated.length, 3, "kubectl: each pod's status annotation");
    assert.match(out, /^ {2}3 ready of 3 endpoints of service mirra; 256 shards, 2 owners each$/m);
    assert.match(out, /^\$ kubectl --kubeconfig \S+\/kubeconfig get pods -n mirra /m);
    assert.equal(result.stderr.trim(), '', 'nothing on stderr');

    await assertNothingLeft(workingDir(out));
  });

  test('--keep stays up until Ctrl-C, printing the commands to look around; Ctrl-C stops everything (exit 130)', async () => {
    // The nodes' hosts.toml, as `mirra configure` (the chart's init container) wrote it: the node's agent, then the upstream.
    const lookAtHostsToml = async (stdout: string): Promise<void> => {
      const upstream = /^ {2}upstream {4}(127\.0\.0\.1:\d+) /m.exec(stdout)?.[1] ?? '';
      for (const [node, ip] of [
        ['node-1', '127.0.0.2'],
        ['node-3', '127.0.0.4'],
      ] as const) {
        const hostsToml = await readFile(join(workingDir(stdout), node, 'certs.d', upstream, 'hosts.toml'), 'utf8');
        assert.ok(hostsToml.startsWith('# managed by mirra'), hostsToml);
        assert.ok(hostsToml.includes(`\nserver = "http://${upstream}"\n`), hostsToml);
        assert.ok(hostsToml.includes(`\n[host."http://${ip}:30020"]\n`), hostsToml);
      }
    };
    const result = await run(process.execPath, [DEMO, '--keep'], { interruptWhen: /^Ctrl-C stops everything\.$/m, beforeInterrupt: lookAtHostsToml });
    assert.equal(result.beforeInterrupt, undefined);
    const out = result.stdout;
    assert.match(out, /^kept running \(--keep\):$/m);
    assert.match(out, /^ {2}export KUBECONFIG=\S+\/kubeconfig$/m);
    assert.match(out, /^ {2}node_modules\/\.bin\/node cmd\/mirra\.ts shards --namespace mirra$/m);
    assert.match(out, /^ {2}node_modules\/\.bin\/node cmd\/mirra\.ts locate 127\.0\.0\.1:\d+\/demo\/app:v1 --namespace mirra$/m);
    assert.equal(result.code, 130, `${out}\n${result.stderr}`);
    assert.match(result.stderr, /^SIGINT: stopping everything the demo started$/m);
    await assertNothingLeft(workingDir(out));
  });

  test('a port taken on a node IP: one line naming it, exit 1, nothing started', async () => {
    const server = await listen('127.0.0.3');
    try {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const result = await run(process.execPath, [DEMO, '--port', String(port)]);
      assert.equal(result.code, 1);
      assert.equal(
        result.stderr,
        `demo: port ${port} is taken on 127.0.0.3: is another mirra demo or cluster running? Stop it, or use another port: npm start -- --port <n>\n`,
      );
      assert.doesNotMatch(result.stdout, /working dir/, 'nothing was started');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('containerd missing: one line that says how to install it, exit 1', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'mirra-demo-no-containerd-'));
    try {
      const result = await run(process.execPath, [DEMO], { env: { ...process.env, MIRRA_CONTAINERD: '2.1', MIRRA_CONTAINERD_CACHE: empty } });
      assert.equal(result.code, 1);
      assert.equal(result.stderr, `demo: containerd 2.1 is not installed: no ${empty}/2.1/usr/bin/containerd (npm run setup installs it, as root)\n`);
      assert.equal(result.stdout, '');
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
