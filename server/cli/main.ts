/**
 * The `petri` command: dispatches to one module per sub-command.
 * Each sub-command module exports `run(args): Promise<number>` (the exit code).
 */
const USAGE = `Usage: petri <command> [options]

Commands:
  serve      start the coordinator server (npm start)
  data       fetch, import and inspect datasets (petri data --help)
  worker     train children for a server from this terminal
  experiment create, list, pause, resume, stop an experiment; apply a plateau remedy
  export     write a trained model (or an ensemble) as a tf.js model

Run 'petri <command> --help' for a command's options.`;

type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  data: async () => (await import('./data.ts')).run,
  serve: async () => (await import('./serve.ts')).run,
  worker: async () => (await import('./worker.ts')).run,
  experiment: async () => (await import('./experiment.ts')).run,
  export: async () => (await import('./export.ts')).run,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name === undefined ? 1 : 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) {
    console.error(`petri: unknown command '${name}'.\n\n${USAGE}`);
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (err) {
    console.error(`petri ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
