#!/usr/bin/env node
// mirra: the command line. Wiring only; the work lives in internal/.
import { runCleanup, runConfigure } from './configure.ts';
import { runInspect } from './inspect.ts';
import { runRegistry } from './registry.ts';
import { errorMessage } from '../internal/errors/message.ts';

const USAGE = `usage: mirra <command> [flags]

commands:
  registry    run the node agent: the OCI mirror served from containerd and peers
  shards      per agent: endpoint readiness, keys, owned shards, postings, last status update
  locate      which agents hold a digest or an image reference (asks its shard's owners)
  configure   write containerd's mirror configuration (certs.d/<registry>/hosts.toml)
  cleanup     remove what "mirra configure" wrote
  help        this text

Run "mirra <command> --help" for the flags of a command.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'registry':
      return runRegistry(rest, process.env);
    case 'shards':
    case 'locate':
      return runInspect(command, rest, process.env);
    case 'configure':
      return runConfigure(rest, process.env);
    case 'cleanup':
      return runCleanup(rest, process.env);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`mirra: unknown command ${JSON.stringify(command)}; run "mirra help"\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mirra: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  },
);
