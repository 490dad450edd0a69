// Types of check-service-install.mjs (plain JavaScript, run as a script and by test/contract/service-install.test.ts).

export function installSteps(readme?: string): string;
export function cannotRun(): string | undefined;
export function checkServiceInstall(options?: { keep?: boolean; steps?: string }): {
  ok: boolean;
  failures: string[];
  output: string;
};
