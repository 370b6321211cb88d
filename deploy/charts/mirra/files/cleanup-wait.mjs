// The post-delete hook's wait: exits 0 once every pod of the cleanup DaemonSet
// is ready (its init container has run `mirra cleanup` on that node), 1 after
// TIMEOUT_SECONDS. Plain JavaScript run with `node -e` in the mirra image.
import { readFileSync } from 'node:fs';

const env = process.env;
const name = env.DAEMONSET ?? '';
const namespace = env.NAMESPACE ?? '';
const timeoutMs = Number(env.TIMEOUT_SECONDS ?? '300') * 1000;
const host = env.KUBERNETES_SERVICE_HOST ?? '';
const base = env.MIRRA_KUBE_API ?? `https://${host.includes(':') ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`;
const tokenFile = env.MIRRA_TOKEN_FILE ?? '/var/run/secrets/kubernetes.io/serviceaccount/token';
const url = `${base}/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/daemonsets/${encodeURIComponent(name)}`;

function token() {
  try {
    return readFileSync(tokenFile, 'utf8').trim();
  } catch {
    return '';
  }
}

async function state() {
  const bearer = token();
  const res = await fetch(url, { headers: bearer === '' ? {} : { Authorization: `Bearer ${bearer}` }, signal: AbortSignal.timeout(10_000) });
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${body?.message ?? ''}`);
  const status = body.status ?? {};
  const desired = status.desiredNumberScheduled ?? 0;
  const observed = (status.observedGeneration ?? 0) >= (body.metadata?.generation ?? 0);
  return { desired, ready: status.numberReady ?? 0, updated: status.updatedNumberScheduled ?? 0, observed };
}

const deadline = Date.now() + timeoutMs;
for (;;) {
  try {
    const s = await state();
    console.log(`cleanup-wait: ${s.ready}/${s.desired} cleanup pods ready`);
    if (s.observed && s.ready >= s.desired && s.updated >= s.desired) process.exit(0);
  } catch (err) {
    console.log(`cleanup-wait: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (Date.now() > deadline) {
    console.log(`cleanup-wait: gave up after ${timeoutMs / 1000}s`);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
