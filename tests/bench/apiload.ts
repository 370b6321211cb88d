// npm run bench:apiload: the API server's watch egress caused by discovery,
// from real objects (api-model.ts: the agent pod with its real status
// annotations, a full EndpointSlice of the headless Service).
//
// - A rollout wave (every node pulls one new image within a minute): the
//   agents' only writes are their status patches, at most one per agent per
//   --status-interval; each goes to the pod's 3 watchers (kubelet, controller
//   manager, scheduler), none of them an agent. Reference measured in the same
//   run: the same updates sent to all N agents, as when agents watch each
//   other's pods (the first version, whose summaries also made each update
//   bigger: 8.5 KB events, 212 GB a wave at 5,000 nodes, README).
// - Membership: one agent restarted (a rolling update of the DaemonSet) is 3
//   updates of its EndpointSlice (100 endpoints), each sent to every agent.
//   This is per restart, never per pull.
// MB = 10^6 bytes. The last line is the JSON summary.
import { restartEgress, sliceEventBytes, statusEventBytes, waveEgress } from './api-model.ts';

const CLUSTER_SIZES = [100, 1000, 5000];
/** A node's status during a wave at 5,000 agents (bench:scale's busiest owner: 3 shards, ~124,000 postings). */
const STATUS = { keys: 2013, owned: [17, 112, 230], postings: 123_990, members: 5000 };

const statusEvent = statusEventBytes(STATUS);
const sliceEvent = sliceEventBytes();
console.log(`status patch watch event: ${statusEvent} B (the whole pod); EndpointSlice event: ${sliceEvent} B (100 endpoints)`);
console.log('');
const mb = (bytes: number): string => (bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0);
const rows = CLUSTER_SIZES.map((n) => ({ n, wave: waveEgress(n, statusEvent), restart: restartEgress(n, sliceEvent) }));
console.log('| nodes N | wave: status patches (MB) | reference: pod watch (MB) | ratio | one agent restarted (MB) | rolling update of every agent (GB) |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.n} | ${mb(r.wave.statusBytes)} | ${mb(r.wave.podWatchBytes)} | ${(r.wave.statusBytes / r.wave.podWatchBytes).toFixed(4)} | ${mb(r.restart)} | ${((r.restart * r.n) / 1e9).toFixed(1)} |`,
  );
}
console.log('');
const at = (n: number): (typeof rows)[number] => rows.find((r) => r.n === n) ?? rows[0]!;
console.log(
  JSON.stringify({
    bench: 'apiload',
    wave_egress_mb_n100: Number((at(100).wave.statusBytes / 1e6).toFixed(2)),
    wave_egress_mb_n1000: Number((at(1000).wave.statusBytes / 1e6).toFixed(2)),
    wave_egress_mb_n5000: Number((at(5000).wave.statusBytes / 1e6).toFixed(2)),
    wave_vs_pod_watch_n5000: Number((at(5000).wave.statusBytes / at(5000).wave.podWatchBytes).toFixed(5)),
    restart_egress_mb_n5000: Number((at(5000).restart / 1e6).toFixed(1)),
  }),
);
