// The Dockerfile, .dockerignore and skaffold.yaml (no Docker engine or skaffold
// here: their structure, and that every path they name exists), and the chart
// README documenting every value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { load } from 'js-yaml';
import { startAgent, type TestAgent } from '../support/agent.ts';
import { startContainerd } from '../support/containerd.ts';
import { freePort, waitFor } from '../support/process.ts';
import { CHART, field, isObj, objs, ROOT, type Obj } from './helm.ts';

/** Runs a command to the end; resolves its stdout, rejects with its stderr. */
function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`${command} ${args.join(' ')}: ${stderr || err.message}`))));
  });
}

function yamlFile(path: string): Obj {
  const doc = load(readFileSync(path, 'utf8'));
  assert.ok(isObj(doc), `${path} is a mapping`);
  return doc;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** The module specifiers a source file imports (static, side-effect and dynamic imports, re-exports). */
function importsOf(source: string): string[] {
  const specs = source.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g);
  return [...specs].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

/**
 * Test support, by path relative to the root: tests/ and any `*test/` folder
 * (internal/oci/storetest: the in-memory ContentStore and its conformance
 * suite, kept beside the interface), and test files.
 */
function isTestSupport(where: string): boolean {
  return /^tests\//.test(where) || /(^|\/)[^/]*test\//.test(where) || /\.test\.ts$/.test(where);
}

/** Packages only tests use; product code never imports them, whatever package.json says. */
const TEST_PACKAGES = new Set(['fast-check']);

function packageName(spec: string): string {
  return spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? '');
}

/** The value paths of values.yaml: every key, nested keys joined with dots. */
function valuePaths(value: unknown, prefix = ''): string[] {
  if (!isObj(value)) return [];
  return Object.entries(value).flatMap(([key, child]) => [`${prefix}${key}`, ...valuePaths(child, `${prefix}${key}.`)]);
}

function dockerStages(dockerfile: string): { from: string; name: string | undefined; lines: string[] }[] {
  const stages: { from: string; name: string | undefined; lines: string[] }[] = [];
  for (const line of dockerfile.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from !== null) stages.push({ from: from[1] ?? '', name: from[2], lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

test('Dockerfile: multi-stage on Node 24, the bundled agent alone in the final stage, as entrypoint', () => {
  const stages = dockerStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  assert.ok(stages.length >= 2);
  const names = new Set(stages.map((s) => s.name).filter((n) => n !== undefined));
  for (const s of stages) assert.ok(/^node:24(-|$)/.test(s.from) || names.has(s.from), `FROM ${s.from}`);
  const build = stages.find((s) => s.name === 'build');
  assert.ok(build?.lines.includes('RUN node hack/build.ts dist'), 'a build stage bundles the agent into dist/ with hack/build.ts');
  const runtime = stages.find((s) => s.name === 'runtime');
  assert.ok(runtime !== undefined);
  assert.ok(runtime.lines.includes('ENTRYPOINT ["node", "/app/dist/mirra.mjs"]'), 'the image runs the bundled agent');
  assert.ok(runtime.lines.includes('COPY --from=build /app/dist ./dist'));
  assert.ok(
    !runtime.lines.some((l) => /npm (ci|install)|COPY (cmd|internal|package)|COPY .*node_modules/.test(l)),
    'no install, no node_modules and no sources in the final stage',
  );
  const chartNodeOptions = /^nodeOptions: "(.*)"$/m.exec(readFileSync(join(ROOT, 'deploy/charts/mirra/values.yaml'), 'utf8'))?.[1];
  assert.ok(chartNodeOptions !== undefined && chartNodeOptions !== '');
  assert.ok(runtime.lines.includes(`ENV NODE_OPTIONS="${chartNodeOptions}"`), 'the image bounds the heap as the chart does');
  const chartTrim = /^mallocTrimThreshold: "(.*)"$/m.exec(readFileSync(join(ROOT, 'deploy/charts/mirra/values.yaml'), 'utf8'))?.[1];
  assert.ok(runtime.lines.includes(`ENV MALLOC_TRIM_THRESHOLD_=${chartTrim ?? ''}`), 'the image tunes malloc as the chart does');
  for (const line of stages.flatMap((s) => s.lines).filter((l) => l.startsWith('COPY ') && !l.includes('--from'))) {
    for (const src of line.split(/\s+/).slice(1, -1)) assert.ok(existsSync(join(ROOT, src)), `COPY ${src} exists`);
  }
  assert.equal(stages.at(-1)?.from, 'runtime', 'the default target is the production image');
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  assert.ok(ignore.includes('*') && ignore.includes('!cmd') && ignore.includes('!internal') && ignore.includes('**/*.test.ts'));
  const copied = stages.flatMap((s) => s.lines).filter((l) => l.startsWith('COPY ') && !l.includes('--from')).flatMap((l) => l.split(/\s+/).slice(1, -1));
  for (const src of copied) assert.ok(ignore.includes(`!${src}`), `.dockerignore lets ${src} into the context`);
});

test('npm run build: dist/mirra.mjs runs the agent as the image does, against a real containerd, without node_modules', async () => {
  // Outside the repository: no node_modules above it, as in the image.
  const out = await mkdtemp(join(tmpdir(), 'mirra-build-out-'));
  const dir = await mkdtemp(join(tmpdir(), 'mirra-build-'));
  let containerd: Awaited<ReturnType<typeof startContainerd>> | undefined;
  let agent: TestAgent | undefined;
  try {
    await run(process.execPath, [join(ROOT, 'hack/build.ts'), out]);
    const files = filesUnder(out).map((f) => relative(out, f));
    assert.ok(files.includes('mirra.mjs'));
    assert.ok(files.includes('mirra-sendfile.node'), 'the sendfile addon beside the bundle');
    assert.ok(!files.some((f) => f.endsWith('.ts') || /test|testkit|fuzz/.test(f)), 'no sources and no test code in dist');
    const bundle = readFileSync(join(out, 'mirra.mjs'), 'latin1');
    assert.ok(
      [...bundle].every((c) => c.charCodeAt(0) < 0x80),
      'the bundle is ASCII: V8 keeps its source as a one-byte string',
    );
    assert.ok(!/fast-check|node:test|tests\/support/.test(bundle), 'no test code in the bundle');
    assert.match(await run(process.execPath, [join(out, 'mirra.mjs'), 'help']), /^usage: mirra <command>/);
    assert.ok(bundle.includes('import("@kubernetes/client-node")') && !bundle.includes('kubernetes-client-javascript'), 'client-node left out, loaded by import()');
    const kubeconfig = join(dir, 'kubeconfig');
    const config = { clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }], contexts: [{ name: 'x', context: { cluster: 'c' } }], 'current-context': 'x' };
    await writeFile(kubeconfig, JSON.stringify(config));
    await assert.rejects(run(process.execPath, [join(out, 'mirra.mjs'), 'shards', '--kubeconfig', kubeconfig]), (err: Error) => {
      assert.match(err.message, /: mirra shards: reading a kubeconfig needs the @kubernetes\/client-node package, which is not installed here [^\n]*\n$/);
      return true;
    });
    containerd = await startContainerd({ dir: join(dir, 'containerd') });
    const port = await freePort();
    agent = await startAgent({ dir, name: 'agent-dist', host: '127.0.0.1', port, containerdSock: containerd.socket, contentPath: containerd.contentDir, entry: join(out, 'mirra.mjs') });
    await waitFor('the compiled agent to be ready', async () => (await fetch(`${agent?.url}/readyz`)).status === 200);
    const res = await fetch(`${agent.url}/v2/`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // --sendfile=auto found the addon beside the bundle.
    const lines = await agent.logLines();
    assert.ok(lines.some((l) => l.msg === 'local blobs are sent with sendfile (plain TCP clients)' && l.addon === join(out, 'mirra-sendfile.node')), 'the bundle loads its addon');
  } finally {
    await agent?.stop();
    await containerd?.stop();
    await rm(out, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
});

test('the image runs: cmd/mirra.ts imports only cmd/, internal/ (no test support) and production dependencies', () => {
  const pkg: unknown = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const dependencies = new Set(Object.keys(isObj(pkg) && isObj(pkg['dependencies']) ? pkg['dependencies'] : {}));
  const seen = new Set<string>();
  const queue = [join(ROOT, 'cmd', 'mirra.ts')];
  while (queue.length > 0) {
    const file = queue.pop() ?? '';
    if (seen.has(file)) continue;
    seen.add(file);
    const where = relative(ROOT, file);
    assert.ok(/^(cmd|internal)\//.test(where) && !isTestSupport(where), `${where} is in the image`);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:')) {
        const name = packageName(spec);
        assert.ok(dependencies.has(name) && !TEST_PACKAGES.has(name), `${where} imports ${spec}, which is not a production dependency`);
      }
    }
  }
  assert.ok(seen.size > 10);
});

test('product code (cmd/, internal/ outside *test/ folders) never imports test support or test-only packages', () => {
  const product = [...filesUnder(join(ROOT, 'cmd')), ...filesUnder(join(ROOT, 'internal'))]
    .filter((file) => file.endsWith('.ts') && !isTestSupport(relative(ROOT, file)));
  assert.ok(product.length > 10);
  const offences: string[] = [];
  for (const file of product) {
    const where = relative(ROOT, file);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const target = spec.startsWith('.') ? relative(ROOT, resolve(dirname(file), spec)) : undefined;
      if (target !== undefined ? isTestSupport(target) || !/^(cmd|internal)\//.test(target) : TEST_PACKAGES.has(packageName(spec))) {
        offences.push(`${where} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(offences, []);
});

test('skaffold.yaml: image built from the Dockerfile, deployed with the chart; dev sync and kind profiles', () => {
  const config = yamlFile(join(ROOT, 'skaffold.yaml'));
  assert.match(String(config['apiVersion']), /^skaffold\/v4beta\d+$/);
  assert.equal(config['kind'], 'Config');
  const artifact = objs(field(config, 'build', 'artifacts'))[0];
  assert.equal(artifact?.['image'], 'mirra');
  assert.ok(existsSync(join(ROOT, String(field(artifact, 'context')), String(field(artifact, 'docker', 'dockerfile')))));
  const release = objs(field(config, 'deploy', 'helm', 'releases'))[0];
  assert.ok(existsSync(join(ROOT, String(release?.['chartPath']), 'Chart.yaml')));
  const values = new Set(valuePaths(yamlFile(join(CHART, 'values.yaml'))));
  const templates = field(release, 'setValueTemplates');
  assert.deepEqual(templates, { 'image.repository': '{{.IMAGE_REPO_mirra}}', 'image.tag': '{{.IMAGE_TAG_mirra}}' });
  for (const key of Object.keys(isObj(templates) ? templates : {})) assert.ok(values.has(key), `${key} is a chart value`);

  const profiles = new Map(objs(config['profiles']).map((p) => [String(p['name']), p]));
  assert.match(String(field(objs(field(profiles.get('kind'), 'activation'))[0], 'kubeContext')), /^kind-/);
  assert.equal(field(profiles.get('kind'), 'build', 'local', 'push'), false);
  const stageNames = dockerStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).map((s) => s.name);
  const files = [...filesUnder(join(ROOT, 'cmd')), ...filesUnder(join(ROOT, 'internal'))].map((f) => relative(ROOT, f));
  for (const patch of objs(field(profiles.get('sync'), 'patches'))) {
    const path = String(patch['path']).split('/').slice(1);
    assert.ok(isObj(field(config, ...path.slice(0, -1))), `the parent of patch path ${String(patch['path'])} exists`);
    const value = patch['value'];
    if (path.at(-1) === 'target') assert.ok(stageNames.includes(String(value)), `Dockerfile stage ${String(value)}`);
    if (path.at(-1) === 'sync') {
      for (const rule of objs(field(value, 'manual'))) {
        const pattern = new RegExp(`^${String(rule['src']).replace(/\./g, '\\.').replace(/\*\*\//g, '(.*/)?').replace(/\*/g, '[^/]*')}$`);
        assert.ok(files.some((f) => pattern.test(f)), `sync ${String(rule['src'])} matches files`);
        assert.equal(rule['dest'], '/app', 'the image keeps cmd/ and internal/ under /app');
      }
    }
    if (path.at(-1) === 'setValues' && isObj(value)) for (const key of Object.keys(value)) assert.ok(values.has(key), `${key} is a chart value`);
  }
});

test('the chart README documents every value, and no value that does not exist', () => {
  const values = valuePaths(yamlFile(join(CHART, 'values.yaml')));
  const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
  const documented = new Set([...readme.matchAll(/^\| `([A-Za-z0-9_.]+)` \|/gm)].map((m) => m[1] ?? ''));
  const covered = (path: string): boolean =>
    path.split('.').some((_, i, parts) => documented.has(parts.slice(0, i + 1).join('.'))) || [...documented].some((key) => key.startsWith(`${path}.`));
  const missing = values.filter((path) => !covered(path));
  assert.deepEqual(missing, [], 'values without a README row (for them or a parent)');
  const stale = [...documented].filter((key) => !values.includes(key));
  assert.deepEqual(stale, [], 'README rows for values that do not exist');
  assert.match(readme, /helm upgrade --install --namespace mirra --create-namespace mirra/);
  assert.match(readme, /helmCharts:/);
});
