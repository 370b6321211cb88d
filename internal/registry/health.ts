// Probes for the kubelet: /healthz (liveness: the event loop answers) and
// /readyz (readiness: the node's content can be served, i.e. containerd is
// reachable). Not access-logged as registry traffic (handler "probe").
import type { FastifyInstance } from 'fastify';

/** `notReady`: why the node cannot serve now (e.g. containerd unreachable, draining), or undefined. */
export function installHealthRoutes(app: FastifyInstance, notReady: () => string | undefined): void {
  app.get('/healthz', async (request, reply) => {
    if (request.accessLog) request.accessLog.handler = 'probe';
    reply.type('text/plain').send('ok\n');
  });
  app.get('/readyz', async (request, reply) => {
    if (request.accessLog) request.accessLog.handler = 'probe';
    const reason = notReady();
    if (reason === undefined) reply.type('text/plain').send('ok\n');
    else reply.code(503).type('text/plain').send(`not ready: ${reason}\n`);
  });
}
