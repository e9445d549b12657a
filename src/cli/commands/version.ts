import { type Command, Option } from 'commander';
import { VERSION } from '../../version.ts';
import { examples } from '../common.ts';

export function registerVersion(program: Command): void {
  const cmd = program
    .command('version')
    .description("print vane's version (the same as --version)")
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .action((o: { output: string }) => {
      if (o.output === 'json') console.log(JSON.stringify({ version: VERSION, node: process.version }));
      else console.log(`vane ${VERSION}`);
    });
  examples(cmd, 'vane version');
}
