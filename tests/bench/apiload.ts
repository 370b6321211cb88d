// npm run bench:apiload: the API server's watch egress caused by mirra's
// summaries, from the real encoder's object sizes.
//
// Model (assumptions, also in docs/SUMMARY-FORMAT.md):
// - Every node holds 40 images x 50 keys = 2,000 keys (references, index,
//   manifests, configs, layers) before the rollout.
// - Every node pulls one new single-platform 10-layer image: 13 new keys
//   (reference, manifest, config, 10 layers). The debounced publisher turns
//   that into one merge patch of the agent's own pod.
// - Every agent watches the pods of the DaemonSet (label selector), so every
//   pod update is sent, as the whole object, to all N watchers (the updating
//   agent included). No compression on the watch stream.
// - All N nodes pull within the same minute (a Deployment rollout to every
//   node): egress per minute = N updates x N watchers x event size.
// - MB = 10^6 bytes.
import { createHasher } from '../../internal/routing/hash.ts';
import { encodeSummary } from '../../internal/routing/encode.ts';
import { annotationBytes, diffAnnotations } from '../../internal/routing/annotations.ts';
import { agentPod } from './pod-fixture.ts';

const IMAGES = 40;
const KEYS_PER_IMAGE = 50;
const NEW_IMAGE_KEYS = 13;
const SAMPLES = 20;
const CLUSTER_SIZES = [100, 1000, 5000];

const hasher = await createHasher();
const digest = (seed: string): string =>
  `sha256:${hasher.digest(`${seed}a`)}${hasher.digest(`${seed}b`)}${hasher.digest(`${seed}c`)}${hasher.digest(`${seed}d`)}`;

function nodeKeys(node: number): string[] {
  const keys: string[] = [];
  for (let image = 0; image < IMAGES; image++) {
    // Most images are shared across nodes (same workloads), a few are node-specific.
    const id = image < 30 ? image : 1000 + node * 10 + image;
    keys.push(`docker.io/library/app${id}:1.${id % 9}`);
    for (let k = 1; k < KEYS_PER_IMAGE; k++) keys.push(digest(`img${id}-${k}`));
  }
  return keys;
}

const newImage = ['registry.example.com/shop/checkout:2.4.0', ...Array.from({ length: NEW_IMAGE_KEYS - 1 }, (_, k) => digest(`new-${k}`))];

let eventBytes = 0;
let patchBytes = 0;
let summaryBytes = 0;
let podBytes = 0;
let baselineEventBytes = 0;
let changedShards = 0;
for (let node = 0; node < SAMPLES; node++) {
  const keys = nodeKeys(node);
  const generation = 1000 + node;
  const before = encodeSummary(keys, { hasher, generation });
  const after = encodeSummary([...keys, ...newImage], { hasher, generation: generation + 1 });
  const patch = diffAnnotations(before.annotations, after.annotations);
  changedShards += Object.keys(patch).length - 1;
  patchBytes += Buffer.byteLength(JSON.stringify({ metadata: { annotations: patch } }));
  summaryBytes += annotationBytes(after.annotations);
  const pod = agentPod(node, after.annotations);
  podBytes += Buffer.byteLength(JSON.stringify(pod));
  eventBytes += Buffer.byteLength(`${JSON.stringify({ type: 'MODIFIED', object: pod })}\n`);
  baselineEventBytes += Buffer.byteLength(`${JSON.stringify({ type: 'MODIFIED', object: agentPod(node, {}) })}\n`);
}
eventBytes /= SAMPLES;
patchBytes /= SAMPLES;
summaryBytes /= SAMPLES;
podBytes /= SAMPLES;
baselineEventBytes /= SAMPLES;
const keysAfter = IMAGES * KEYS_PER_IMAGE + NEW_IMAGE_KEYS;

console.log(
  `per node: ${keysAfter} keys -> summary annotations ${summaryBytes.toFixed(0)} B (${(summaryBytes / keysAfter).toFixed(3)} B/key); pod object ${podBytes.toFixed(0)} B`,
);
console.log(
  `per update: merge patch ${patchBytes.toFixed(0)} B (header + ${(changedShards / SAMPLES).toFixed(1)} of 8 shards), watch event ${eventBytes.toFixed(0)} B (${baselineEventBytes.toFixed(0)} B without the summary)`,
);
console.log('');
const mb = (bytes: number): string => (bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0);
const rows = CLUSTER_SIZES.map((n) => ({ n, perUpdate: n * eventBytes, perMinute: n * n * eventBytes, withoutSummary: n * n * baselineEventBytes }));
console.log(
  '| nodes N | event (B) | egress per update (MB) = N x event | egress per minute (MB/min) = N x N x event | of which summary (MB/min) | egress (MB/s) |',
);
console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.n} | ${eventBytes.toFixed(0)} | ${mb(r.perUpdate)} | ${mb(r.perMinute)} | ${mb(r.perMinute - r.withoutSummary)} | ${(r.perMinute / 60 / 1e6).toFixed(1)} |`,
  );
}
console.log('');
console.log(
  JSON.stringify({
    bench: 'apiload',
    egress_mb_per_min_n100: Number((rows[0]!.perMinute / 1e6).toFixed(1)),
    egress_mb_per_min_n1000: Number((rows[1]!.perMinute / 1e6).toFixed(1)),
    egress_mb_per_min_n5000: Number((rows[2]!.perMinute / 1e6).toFixed(1)),
  }),
);
