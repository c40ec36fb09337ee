import type { NdjsonFileSink } from "../sink/ndjson-file-sink.js";

/**
 * Where batches go. `send` resolves when the destination has acknowledged the batch (and throws
 * when it has not: the batcher retries); `sync` makes acknowledged data durable before a checkpoint.
 */
export interface Output {
  readonly name: string;
  send(lines: readonly string[]): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export function fileOutput(sink: NdjsonFileSink): Output {
  return {
    name: `file:${sink.path}`,
    send: (lines) => sink.writeLines(lines),
    sync: () => sink.sync(),
    close: () => sink.close(),
  };
}

export function stdoutOutput(stream: NodeJS.WritableStream = process.stdout): Output {
  return {
    name: "stdout",
    send: (lines) =>
      new Promise<void>((resolve, reject) => {
        stream.write(`${lines.join("\n")}\n`, (err) => (err ? reject(err) : resolve()));
      }),
    sync: async () => {},
    close: async () => {},
  };
}
