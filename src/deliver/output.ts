import { joinLines } from "../sink/join-lines.js";
import type { NdjsonFileSink } from "../sink/ndjson-file-sink.js";
import type { Envelope } from "./batcher.js";

/**
 * Where batches go. `send` resolves when the destination has acknowledged the batch (and throws
 * when it has not: the batcher retries); `sync` makes acknowledged data durable before a checkpoint.
 */
export interface Output {
  readonly name: string;
  send(batch: readonly Envelope[]): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export function fileOutput(sink: NdjsonFileSink): Output {
  return {
    name: `file:${sink.path}`,
    send: (batch) => sink.writeBatch(batch),
    sync: () => sink.sync(),
    close: () => sink.close(),
  };
}

export function stdoutOutput(stream: NodeJS.WritableStream = process.stdout): Output {
  return {
    name: "stdout",
    send: (batch) =>
      new Promise<void>((resolve, reject) => {
        stream.write(
          joinLines(
            batch.map((e) => e.data),
            "",
            "\n",
            "\n",
          ),
          (err) => (err ? reject(err) : resolve()),
        );
      }),
    sync: async () => {},
    close: async () => {},
  };
}
