// The chart's Grafana dashboard asks only for metrics the agent exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMetrics } from '../../internal/metrics/metrics.ts';
import { parseExposition } from '../support/exposition.ts';
import { CHART, field, objs } from './helm.ts';

test('every metric in the dashboard is one the agent registers', async () => {
  const dashboard: unknown = JSON.parse(readFileSync(join(CHART, 'monitoring', 'grafana-dashboard.json'), 'utf8'));
  const exprs = objs(field(dashboard, 'panels')).flatMap((p) => objs(p['targets']).map((t) => String(t['expr'])));
  exprs.push(String(field(objs(field(dashboard, 'templating', 'list'))[1], 'query')));
  assert.ok(exprs.length > 10);
  const metrics = createMetrics();
  const exported = parseExposition(await metrics.registry.metrics()).types;
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bmirra_[a-z0-9_]+/g)].map((m) => m[0])));
  for (const name of used) {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const type = exported.get(name) ?? exported.get(base);
    assert.ok(type !== undefined, `${name} is not exported by the agent`);
    if (name !== base && !exported.has(name)) assert.equal(type, 'histogram', `${name}: ${base} is a histogram`);
    if (name.endsWith('_total')) assert.equal(type, 'counter', `${name} is a counter`);
  }
  assert.ok(used.size >= 15, [...used].join(' '));
});
