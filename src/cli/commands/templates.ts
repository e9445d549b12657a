import type { Command } from 'commander';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { z } from 'zod';
import { clientOf, examples, withClientOptions } from '../common.ts';
import { ApiCallError, CliError, EXIT_CODES_HELP } from '../errors.ts';
import { emit, table } from '../output.ts';
import { readInputFile } from '../spec-input.ts';

interface TemplateView {
  name: string;
  spec: Record<string, unknown>;
  source: 'config' | 'api';
  updatedAt?: number;
}

/** One document of a file given to `templates apply`. */
const TemplateDoc = z.strictObject({
  name: z.string().min(1).max(100),
  spec: z.record(z.string(), z.unknown()),
});

const MAX_DOCS = 100;

/** The templates of a YAML file: one or more documents, each `{ name, spec }`. */
export function readTemplateFile(file: string): z.infer<typeof TemplateDoc>[] {
  const docs = parseAllDocuments(readInputFile(file));
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length > MAX_DOCS) throw new CliError(`${file}: more than ${MAX_DOCS} documents`);
  const out: z.infer<typeof TemplateDoc>[] = [];
  list.forEach((doc, i) => {
    if (doc.errors.length)
      throw new CliError(
        `${file}: document ${i + 1} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`,
      );
    const value = doc.toJS();
    if (value === null || value === undefined) return;
    const parsed = TemplateDoc.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = issue.path.map(String).join('.') || '(document)';
      throw new CliError(
        `${file}: document ${i + 1}: ${where}: ${issue.message} (each document is { name: NAME, spec: { ...part of a rollout spec } })`,
      );
    }
    out.push(parsed.data);
  });
  if (!out.length) throw new CliError(`${file}: no template in it (each document is { name, spec })`);
  return out;
}

const when = (t: TemplateView) => (t.updatedAt ? new Date(t.updatedAt).toISOString() : '-');

export function registerTemplates(program: Command): void {
  const templates = program
    .command('templates')
    .alias('template')
    .description('named rollout templates (per-service defaults) through the API')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);
  examples(templates, 'vane templates list', 'vane templates apply -f templates.yaml');

  const list = withClientOptions(templates.command('list'))
    .description('every template, from the config file and from the API')
    .action(async (_o: unknown, cmd: Command) => {
      const { api, settings } = clientOf(cmd);
      const { data } = await api.call<{ templates: TemplateView[] }>('GET', '/api/v1/templates');
      emit(settings.output, data.templates, () =>
        data.templates.length
          ? table(
              ['NAME', 'SOURCE', 'UPDATED', 'TARGET'],
              data.templates.map((t) => {
                const tg = t.spec.target as { namespace?: string; virtualService?: string } | undefined;
                return [
                  t.name,
                  t.source,
                  when(t),
                  tg ? `${tg.namespace ?? '?'}/${tg.virtualService ?? '?'}` : '-',
                ];
              }),
            )
          : '(no templates)',
      );
    });
  examples(list, 'vane templates list -o json');

  const get = withClientOptions(templates.command('get'))
    .description('one template with its spec')
    .argument('<name>', 'template name')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { api, settings } = clientOf(cmd);
      const { data } = await api.call<{ template: TemplateView }>(
        'GET',
        `/api/v1/templates/${encodeURIComponent(name)}`,
      );
      const t = data.template;
      emit(
        settings.output,
        t,
        () =>
          `# ${t.name} (source: ${t.source}, updated: ${when(t)})\n${toYaml({ name: t.name, spec: t.spec })}`,
      );
    });
  examples(get, 'vane templates get reviews');

  const apply = withClientOptions(templates.command('apply'))
    .description('create or replace the templates of a YAML file (one { name, spec } per document)')
    .requiredOption('-f, --file <file>', "the YAML file ('-' reads stdin)")
    .action(async (o: { file: string }, cmd: Command) => {
      const docs = readTemplateFile(o.file);
      const { api, settings } = clientOf(cmd);
      const done: { name: string; action: 'created' | 'replaced' }[] = [];
      for (const doc of docs) {
        try {
          await api.call('POST', '/api/v1/templates', doc);
          done.push({ name: doc.name, action: 'created' });
        } catch (e) {
          if (!(e instanceof ApiCallError && e.status === 409 && /already exists/.test(e.apiMessage)))
            throw e;
          await api.call('PUT', `/api/v1/templates/${encodeURIComponent(doc.name)}`, { spec: doc.spec });
          done.push({ name: doc.name, action: 'replaced' });
        }
      }
      emit(settings.output, done, () => done.map((d) => `${d.action} ${d.name}`).join('\n'));
    });
  examples(
    apply,
    'vane templates apply -f reviews.yaml',
    '# reviews.yaml:\n  #   name: reviews\n  #   spec: { target: { namespace: bookinfo, virtualService: reviews, destinationRule: reviews }, stable: { subset: v1 } }',
  );

  const del = withClientOptions(templates.command('delete'))
    .description('delete a template made through the API')
    .argument('<name>', 'template name')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { api, settings } = clientOf(cmd);
      await api.call('DELETE', `/api/v1/templates/${encodeURIComponent(name)}`);
      emit(settings.output, { deleted: name }, () => `deleted ${name}`);
    });
  examples(del, 'vane templates delete reviews');
}
