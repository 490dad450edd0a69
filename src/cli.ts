// The command line: builds the program (one file per command in cli/) and runs it with the Host of this process
// (cli/host.ts, the one module that names `process`).
import { Command } from "commander";
import { filterCommand } from "./cli/filter.js";
import { processHost } from "./cli/host.js";
import { importCommand } from "./cli/import.js";
import { ENVIRONMENT_HELP } from "./cli/program-options.js";
import { sqsCommand } from "./cli/sqs.js";
import { usageExit } from "./cli/usage.js";
import { verifyCommand } from "./cli/verify.js";
import { ShutdownSignals } from "./run/shutdown.js";
import type { Host } from "./shared/host.js";
import { VERSION } from "./version.js";

export function buildProgram(host: Host, signals: ShutdownSignals): Command {
  const exit = usageExit((code) => host.exit(code));
  const program = new Command()
    .name("cloudtrail-exec-filter")
    .description(
      "fluentd out_exec_filter child: reads SQS notification records (or s3:// and file:// lines) on stdin, " +
        "fetches the CloudTrail log files they name, and writes one JSON line per CloudTrail event on stdout. " +
        "Failures become dead-letter records; logs never go to stdout.",
    )
    .version(VERSION, "-V, --version")
    .enablePositionalOptions()
    .exitOverride(exit);
  filterCommand(program, host, signals);
  program.addCommand(importCommand(program, host, signals).exitOverride(exit));
  program.addCommand(sqsCommand(program, host, signals).exitOverride(exit));
  program.addCommand(verifyCommand(program, host, signals).exitOverride(exit));
  program.addHelpText("after", ENVIRONMENT_HELP);
  return program;
}

export async function main(host: Host = processHost()): Promise<void> {
  // First thing: a signal from now on is kept until a runner says how to stop (run/shutdown.ts).
  const signals = new ShutdownSignals(host);
  await buildProgram(host, signals).parseAsync([...host.argv]);
}
