// A kubelet-style HTTP readiness prober: GET <url> on a fresh connection
// (the kubelet disables keep-alive for probes) every intervalMs, success on a
// 2xx/3xx answer within timeoutMs, failure on anything else (refused, reset,
// timeout: a paused process never answers). One probe at a time; every result
// goes to onResult (the caller reports only changes).
import { request } from 'node:http';

export interface ProberOptions {
  host: string;
  port: number;
  path: string;
  intervalMs: number;
  timeoutMs: number;
  onResult(ready: boolean): void;
}

export interface Prober {
  stop(): void;
}

/** One HTTP probe: resolves true on 200-399 within timeoutMs, false otherwise; never rejects. */
export function probeOnce(host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(ok);
    };
    const req = request({ host, port, path, method: 'GET', agent: false, headers: { 'User-Agent': 'kube-probe/1.32', Connection: 'close' } }, (res) => {
      const code = res.statusCode ?? 0;
      res.resume(); // consume the (small) body
      res.once('end', () => finish(code >= 200 && code < 400));
      res.once('error', () => finish(false));
    });
    req.once('error', () => finish(false));
    const timer = setTimeout(() => finish(false), timeoutMs);
    req.end();
  });
}

export function startProber(options: ProberOptions): Prober {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const tick = async (): Promise<void> => {
    if (stopped) return;
    const started = Date.now();
    const ready = await probeOnce(options.host, options.port, options.path, options.timeoutMs);
    if (stopped) return;
    options.onResult(ready);
    timer = setTimeout(() => void tick(), Math.max(0, options.intervalMs - (Date.now() - started)));
  };
  void tick();

  return {
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
