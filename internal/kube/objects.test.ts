// The views of pods and EndpointSlices the watchers and the status publisher
// read (objects.ts): only mirra's annotations of a pod, the registry port and
// the pod endpoints of a slice, anything malformed dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePod, parseSlice } from './objects.ts';

test("a pod view keeps only mirra's status annotations (with the first version's summary ones, to remove them)", () => {
  const annotations = {
    'mirra.dev/index': 'v=2;keys=3;owned=1;postings=4;members=2',
    'mirra.dev/owned-shards': '7',
    'mirra.dev/updated': '2026-12-06T08:00:00.000Z',
    'mirra.dev/summary': 'h',
    'mirra.dev/shard-0': 's',
    'mirra.dev/other': 'x',
    other: 'x',
    'mirra.dev/shard-1': 5,
  };
  const pod = parsePod({
    metadata: { name: 'p', resourceVersion: '7', annotations },
    spec: { nodeName: 'n1' },
    status: { podIP: '10.0.0.1' },
  });
  assert.deepEqual(pod, {
    name: 'p',
    resourceVersion: '7',
    nodeName: 'n1',
    podIP: '10.0.0.1',
    ready: false,
    annotations: {
      'mirra.dev/index': 'v=2;keys=3;owned=1;postings=4;members=2',
      'mirra.dev/owned-shards': '7',
      'mirra.dev/updated': '2026-12-06T08:00:00.000Z',
      'mirra.dev/summary': 'h',
      'mirra.dev/shard-0': 's',
    },
  });
  const conditions = (status: string): unknown[] => [
    { type: 'Initialized', status: 'True' },
    { type: 'Ready', status },
  ];
  assert.equal(parsePod({ metadata: { name: 'p' }, status: { conditions: conditions('True') } })?.ready, true);
  assert.equal(parsePod({ metadata: { name: 'p' }, status: { conditions: conditions('False') } })?.ready, false);
});

test('an EndpointSlice view: the registry port (else the first), readiness (unset: ready), pod targets only', () => {
  const slice = parseSlice({
    metadata: { name: 's', resourceVersion: '9' },
    ports: [
      { name: 'metrics', port: 9090 },
      { name: 'registry', port: 5000 },
    ],
    endpoints: [
      { addresses: ['10.0.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'a' }, zone: 'z1', nodeName: 'n1' },
      { addresses: ['10.0.0.2'], conditions: { ready: false }, targetRef: { kind: 'Pod', name: 'b' } },
      { addresses: ['10.0.0.3'], conditions: {}, targetRef: { name: 'c' } },
      { addresses: ['10.0.0.4'], targetRef: { kind: 'Node', name: 'd' } },
      { addresses: [], targetRef: { kind: 'Pod', name: 'e' } },
      { addresses: ['10.0.0.6'] },
      'garbage',
    ],
  });
  assert.deepEqual(
    slice?.endpoints.map((e) => [e.podName, e.ip, e.ready, e.zone, e.nodeName, e.port]),
    [
      ['a', '10.0.0.1', true, 'z1', 'n1', 5000],
      ['b', '10.0.0.2', false, undefined, undefined, 5000],
      ['c', '10.0.0.3', true, undefined, undefined, 5000],
    ],
  );
  assert.equal(
    parseSlice({ metadata: { name: 's' }, ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['1.2.3.4'], targetRef: { name: 'a' } }] })
      ?.endpoints[0]?.port,
    8080,
  );
  assert.equal(
    parseSlice({ metadata: { name: 's' }, ports: [{ port: 0 }, { port: 'x' }], endpoints: [{ addresses: ['1.2.3.4'], targetRef: { name: 'a' } }] })
      ?.endpoints[0]?.port,
    undefined,
  );
});

test('malformed objects give undefined, never an exception', () => {
  for (const bad of [null, 1, 'x', [], {}, { metadata: null }, { metadata: { name: '' } }, { metadata: { name: 5 } }]) {
    assert.equal(parsePod(bad), undefined);
    assert.equal(parseSlice(bad), undefined);
  }
  assert.deepEqual(parseSlice({ metadata: { name: 's' }, endpoints: 'nope', ports: {} })?.endpoints, []);
});
