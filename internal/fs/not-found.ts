// Whether a failed filesystem call failed because the path does not exist
// (ENOENT). Its own folder, below every other, because the hosts.toml writer
// (internal/hostsconfig) and containerd's preflight (internal/containerd)
// both treat a missing file as an answer rather than an error.

export function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === 'ENOENT';
}
