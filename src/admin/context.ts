// What a command may touch besides its options: the global flags, the environment and the
// output streams (tests give their own).
export interface AdminCtx {
  /** `-f/--config PATH` */
  configPath?: string;
  env: NodeJS.ProcessEnv;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}
