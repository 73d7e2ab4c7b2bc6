// Entry of the `caducee` command line. `trust`, `pki`, `xdm`, `dns` and `directory` commands load
// only what they need, so that `caducee trust lookup` on the full national list answers well
// under a second and a million-line `directory import` starts at once; every other command loads
// the whole operator.
import { Command } from 'commander';

const sub = process.argv[2];
let program: Command;
if (sub === 'trust') {
  const { registerTrustCommands } = await import('./trust.js');
  program = new Command().name('caducee');
  registerTrustCommands(program);
} else if (sub === 'pki') {
  const { registerPkiCommands } = await import('./pki.js');
  program = new Command().name('caducee');
  registerPkiCommands(program);
} else if (sub === 'xdm') {
  const { registerXdmCommands } = await import('./xdm.js');
  program = new Command().name('caducee');
  registerXdmCommands(program);
} else if (sub === 'dns') {
  const { registerDnsCommands } = await import('./dns.js');
  program = new Command().name('caducee');
  registerDnsCommands(program);
} else if (sub === 'directory') {
  // `directory import` streams a national extraction: it starts without the whole operator.
  const { registerDirectoryCommands } = await import('./directory.js');
  program = new Command().name('caducee');
  registerDirectoryCommands(program);
} else {
  ({ program } = await import('./commands.js'));
}
await program.parseAsync(process.argv);
