// Size limits of OCI content, shared by everything that reads it: the
// registry's manifest route, the peer source and containerd's image walk all
// read a manifest whole into memory, so all refuse one over the same bound.
// 4 MiB is the size the distribution spec asks registries to accept at least.

/** The largest manifest (or index) read whole; larger content is not taken for one. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
