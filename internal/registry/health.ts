// Probes for the kubelet: /healthz (liveness: the event loop answers) and
// /readyz (readiness: the node's content can be served, i.e. containerd is
// reachable). Not access-logged as registry traffic (handler "probe").
import type { FastifyInstance } from 'fastify';

export function installHealthRoutes(app: FastifyInstance, ready: () => boolean): void {
  app.get('/healthz', async (request, reply) => {
    if (request.accessLog) request.accessLog.handler = 'probe';
    reply.type('text/plain').send('ok\n');
  });
  app.get('/readyz', async (request, reply) => {
    if (request.accessLog) request.accessLog.handler = 'probe';
    if (ready()) reply.type('text/plain').send('ok\n');
    else reply.code(503).type('text/plain').send('not ready: containerd unreachable\n');
  });
}
