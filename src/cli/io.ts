// Output and exit status of a command, injectable so commands can run in-process in tests.
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  setExitCode(code: number): void;
}

export const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  setExitCode: (c) => {
    process.exitCode = c; // never process.exit(): let pending output flush
  },
};
