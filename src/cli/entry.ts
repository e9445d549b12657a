#!/usr/bin/env node
import { runCli } from './program.ts';

// The server's modules load only when a server command runs: client commands and --help stay quick.
runCli(process.argv.slice(2), {
  runServer: async (...args) => (await import('./main.ts')).runServer(...args),
}).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`vane: ${(e as Error).message}`);
    process.exit(2);
  },
);
