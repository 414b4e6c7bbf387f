import { runCli } from './main';

// The simulator subcommand keeps running (it listens); every other command ends with its exit code.
const argv = process.argv.slice(2);
void runCli(argv).then((code) => {
  if (argv[0] !== 'simulator') process.exit(code);
});
