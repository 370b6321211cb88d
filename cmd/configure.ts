// `mirra configure` and `mirra cleanup`: containerd's mirror configuration on
// a node (an init container runs configure). Wiring only.
import { cleanupFlags, configureFlags } from '../internal/config/configure-flags.ts';
import { flagHelp, parseFlags, rejectExtraArguments, usageExit, UsageError, wantsHelp } from '../internal/config/flags.ts';
import { removeMirrorConfiguration, type CleanupAction } from '../internal/hostsconfig/cleanup.ts';
import { writeMirrorConfiguration } from '../internal/hostsconfig/configure.ts';
import { errorMessage } from '../internal/errors/message.ts';

const CONFIGURE_HELP = `usage: mirra configure [flags]

Writes containerd's mirror configuration: <config path>/<registry>/hosts.toml
for each mirrored registry, the mirror targets first and the registry itself as
the fallback server. Every file it writes starts with "# managed by mirra"; an
existing file it replaces is kept as hosts.toml.mirra-backup. containerd reads
these files on each pull (no restart), when its CRI registry config_path points
at the directory.

flags (each can also be set by its environment variable):
${flagHelp(configureFlags)}
`;

const CLEANUP_HELP = `usage: mirra cleanup [flags]

Removes what "mirra configure" wrote: every hosts.toml that starts with
"# managed by mirra" (restoring hosts.toml.mirra-backup where there is one) and
the directories it created, when empty. Nothing else is touched.

flags (each can also be set by its environment variable):
${flagHelp(cleanupFlags)}
`;

function printActions(actions: CleanupAction[]): void {
  for (const action of actions) {
    process.stdout.write(`${action.action} ${action.path}${action.reason === undefined ? '' : ` (${action.reason})`}\n`);
  }
}

export async function runConfigure(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(CONFIGURE_HELP);
    return 0;
  }
  let config;
  try {
    const parsed = parseFlags(configureFlags, argv, env);
    rejectExtraArguments(parsed.positionals);
    config = parsed.values;
    if (config.mirrorTargets.length === 0) throw new UsageError('--mirror-targets is required (e.g. http://127.0.0.1:30020)');
  } catch (err) {
    return usageExit('configure', err);
  }
  try {
    const result = await writeMirrorConfiguration({
      certsDir: config.certsDir,
      registries: config.mirroredRegistries,
      mirrorTargets: config.mirrorTargets,
      resolveTags: config.resolveTags,
      prependExisting: config.prependExisting,
    });
    for (const file of result.written) {
      const notes = [file.backup === undefined ? '' : `previous file kept as ${file.backup}`, file.prepended ? 'its hosts kept after ours' : ''];
      const note = notes.filter((n) => n !== '').join(', ');
      process.stdout.write(`wrote ${file.path}${note === '' ? '' : ` (${note})`}\n`);
    }
    printActions(result.stale);
    return 0;
  } catch (err) {
    process.stderr.write(`mirra configure: ${errorMessage(err)}\n`);
    return 1;
  }
}

export async function runCleanup(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(CLEANUP_HELP);
    return 0;
  }
  let config;
  try {
    const parsed = parseFlags(cleanupFlags, argv, env);
    rejectExtraArguments(parsed.positionals);
    config = parsed.values;
  } catch (err) {
    return usageExit('cleanup', err);
  }
  try {
    printActions(await removeMirrorConfiguration(config.certsDir));
    return 0;
  } catch (err) {
    process.stderr.write(`mirra cleanup: ${errorMessage(err)}\n`);
    return 1;
  }
}
