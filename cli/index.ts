import { runCli } from './main';

/** Resolves once everything written to `stream` so far has been handed to the OS. */
const drained = (stream: NodeJS.WriteStream) =>
  new Promise<void>((resolve) => stream.write('', () => resolve()));

// The simulator subcommand keeps running (it listens); every other command ends with its exit code —
// but only after stdout and stderr have drained: on a pipe Node writes asynchronously, and exiting
// with writes pending cut `status --json | jq` off after 64 KiB.
// A reader that closed early (`status --json | head -c 100`, `grep -q`) is not an error of ours: stop
// quietly, as Unix tools do, instead of dying on an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });

const argv = process.argv.slice(2);
void runCli(argv).then(async (code) => {
  if (argv[0] === 'simulator') return;
  process.exitCode = code;
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  process.exit(code);
});
