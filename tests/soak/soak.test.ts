// `npm run soak` for 60 s, as part of `npm test`: combined random faults on a
// live 5-node cluster (soak.ts); every pull completes with the right content,
// every agent ends ready and serving with its descriptors back near its start
// and its RSS under the chart's limit. The seed is fixed here (MIRRA_SOAK_SEED
// overrides it) so that a failure replays with the command it prints.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isRecord } from '../../internal/json/narrow.ts';
import { FD_GROWTH_LIMIT, RSS_LIMIT_MB } from './report.ts';

const SOAK = fileURLToPath(new URL('./soak.ts', import.meta.url));
const SECONDS = 60;
const SEED = process.env.MIRRA_SOAK_SEED ?? '20261206';

function runSoak(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [SOAK], {
    env: { ...process.env, MIRRA_SOAK_SECONDS: String(SECONDS), MIRRA_SOAK_SEED: SEED },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

test(`soak: ${SECONDS} s of combined random faults on 5 nodes, nothing lost, nothing stuck`, { timeout: 480_000 }, async () => {
  const run = await runSoak();
  const lines = run.stdout.trim().split('\n');
  const report = `seed ${SEED}; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
  const last: unknown = JSON.parse(lines.at(-1) ?? 'null');
  assert.ok(isRecord(last), report);
  process.stdout.write(`# ${lines.at(-1)}\n`);
  assert.equal(last.bench, 'soak');
  assert.equal(last.seed, SEED);
  assert.equal(last.corrupt, 0, report);
  assert.equal(last.failed_pulls, 0, report);
  assert.equal(last.problems, 0, report);
  assert.ok(typeof last.pulls === 'number' && last.pulls >= 10, `pulls: ${String(last.pulls)}\n${report}`);
  assert.ok(typeof last.faults === 'number' && last.faults >= 3, `faults: ${String(last.faults)}\n${report}`);
  assert.ok(typeof last.fd_growth === 'number' && last.fd_growth <= FD_GROWTH_LIMIT, `fd_growth: ${String(last.fd_growth)}\n${report}`);
  assert.ok(typeof last.peak_rss_mb === 'number' && last.peak_rss_mb < RSS_LIMIT_MB, `peak_rss_mb: ${String(last.peak_rss_mb)}\n${report}`);
  assert.ok(typeof last.max_pull_s === 'number' && typeof last.bound_s === 'number' && last.max_pull_s <= last.bound_s, report);
  assert.equal(run.code, 0, report);
});
