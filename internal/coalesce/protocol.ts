// The wire names of fetch coordination between agents (client.ts sends them,
// the registry's routes-fetches.ts answers them), in one place below both.

/** A digest's fetch record on its coordinator: POST asks, PUT renews, DELETE drops. */
export const FETCHES_PATH = '/mirra/v1/fetches/';
/** Query parameter: the sending agent's pod name (with peer auth on it must be the signed sender). */
export const FROM_PARAM = 'from';
/** Query parameter of an ask: a fetcher the asker could not stream from. */
export const FAILED_PARAM = 'failed';
