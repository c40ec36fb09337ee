import { once } from "node:events";
import { open, readdir, rename, rm, stat } from "node:fs/promises";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { basename, dirname, join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { gzipSync } from "node:zlib";
import { CheckpointStore, CheckpointStoreError, type LoadResult } from "../checkpoint/checkpoint-store.js";
import {
  describeStartAt,
  inputsAtFirstStart,
  readStartedInputsForReport,
} from "../checkpoint/start-policy.js";
import type { InputConfig, RunConfig } from "../config/run-config.js";
import { parseDuration } from "../config/units.js";
import { HttpClient } from "../deliver/http-client.js";
import { type HttpSettings, parseHttpSettings, tlsOptions } from "../deliver/http-output.js";
import { listInputFiles } from "../tail/discover.js";
import { loadOpsConfig, type OpsConfigSource, type OpsStreams } from "./ops-config.js";

/**
 * `pmta-ingest doctor`: one line per check, in the spirit of `filebeat test output`, so that an
 * operator can tell before (or while) the daemon runs whether the machine is set up right. Every check
 * is real — directories listed, a probe file written, fsynced, renamed and removed, one request sent to
 * the output with the configured credentials and TLS — and every failure says how to fix it.
 */
export type CheckStatus = "PASS" | "FAIL" | "WARN";

export interface Check {
  readonly status: CheckStatus;
  readonly name: string;
  readonly detail: string;
  readonly fix?: string;
}

export interface DoctorOptions extends OpsConfigSource, OpsStreams {
  readonly json?: boolean;
  /** fsync slower than this is a warning (checkpoints are fsynced several times a second). Default 200 ms. */
  readonly slowFsyncMs?: number;
}

/** Runs every check; exit 0 when none failed (warnings allowed), 1 otherwise. */
export async function runDoctor(opts: DoctorOptions): Promise<number> {
  const checks: Check[] = [];
  const emit = (c: Check): void => {
    checks.push(c);
    // Human lines appear as each check completes: a slow network check should not hide the others.
    if (opts.json !== true) opts.out.write(`${formatCheck(c)}\n`);
  };
  const loaded = await loadOpsConfig(opts);
  if (!loaded.ok) {
    emit({
      status: "FAIL",
      name: "config",
      detail: loaded.message,
      fix: "correct the config; the other checks need a valid config",
    });
  } else {
    emit({ status: "PASS", name: "config", detail: `${loaded.config.source} is valid` });
    for (const warning of loaded.config.warnings) emit({ status: "WARN", name: "config", detail: warning });
    if (loaded.config.source !== "(flags)") {
      const { findExposedSecrets } = await import("../config/secret-permissions.js");
      for (const x of await findExposedSecrets(loaded.config.source, loaded.config)) {
        emit({
          status: "WARN",
          name: "secrets",
          detail: `${x.file} (mode ${x.mode}) is readable by every user and holds ${x.keys.join(", ")}`,
          fix: x.fix,
        });
      }
    }
    await runChecks(loaded.config, emit, opts.slowFsyncMs ?? 200);
  }
  const failed = checks.filter((c) => c.status === "FAIL").length;
  if (opts.json === true) {
    opts.out.write(`${JSON.stringify({ ok: failed === 0, checks }, null, 2)}\n`);
  } else {
    const warned = checks.filter((c) => c.status === "WARN").length;
    opts.out.write(
      failed === 0
        ? `all ${checks.length} checks passed${warned > 0 ? ` (${warned} warning${warned === 1 ? "" : "s"})` : ""}\n`
        : `${failed} of ${checks.length} checks failed\n`,
    );
  }
  return failed === 0 ? 0 : 1;
}

export function formatCheck(c: Check): string {
  return `${c.status} ${c.name} — ${c.detail}${c.fix === undefined ? "" : ` (${c.fix})`}`;
}

async function runChecks(config: RunConfig, emit: (c: Check) => void, slowFsyncMs: number): Promise<void> {
  for (const input of config.inputs) await checkInput(input, emit);
  await checkStateDir(config.stateDir, emit, slowFsyncMs);
  const loaded = await checkCheckpointStore(config.stateDir, emit);
  if (loaded !== undefined) await checkStartPolicy(config, loaded, emit);
  emit(await checkWritableFile("dead-letter", config.deadLetterPath, "deadLetter.path"));
  await checkOutput(config, emit);
  emit(await checkMetrics(config.metrics.listen));
}

// ------------------------------------------------------------------------------------------------
// Inputs

async function checkDir(
  name: string,
  dir: string,
  key: string,
  missing: CheckStatus,
  missingFix: string,
): Promise<{ check: Check; dev?: number }> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(dir);
  } catch (err) {
    const code = errno(err);
    if (code === "ENOENT") {
      return { check: { status: missing, name, detail: `${dir} does not exist`, fix: missingFix } };
    }
    return {
      check: {
        status: "FAIL",
        name,
        detail: `cannot stat ${dir} (${code})`,
        fix: `give the service user search (x) permission on every directory of ${dir}, or fix ${key}`,
      },
    };
  }
  if (!st.isDirectory()) {
    return { check: { status: "FAIL", name, detail: `${dir} is not a directory`, fix: `fix ${key}` } };
  }
  try {
    const names = await readdir(dir);
    return {
      check: { status: "PASS", name, detail: `${dir} is listable (${names.length} entries)` },
      dev: st.dev,
    };
  } catch (err) {
    return {
      check: {
        status: "FAIL",
        name,
        detail: `cannot list ${dir} (${errno(err)})`,
        fix: `give the user running pmta-ingest read and search permission (r-x) on ${dir}`,
      },
      dev: st.dev,
    };
  }
}

async function checkInput(input: InputConfig, emit: (c: Check) => void): Promise<void> {
  const prefix = `input ${input.name}`;
  const live = await checkDir(
    `${prefix} directory`,
    input.dir,
    "inputs[].path",
    "FAIL",
    "create it or fix inputs[].path: it must be the directory PowerMTA writes its accounting files in",
  );
  emit(live.check);
  let archive: { check: Check; dev?: number } | undefined;
  if (input.archive === undefined) {
    emit({
      status: "WARN",
      name: `${prefix} archive`,
      detail: "no archive configured",
      fix: "set inputs[].archive to PowerMTA's move-to directory: a file moved there before it was read to the end is otherwise never finished",
    });
  } else if (input.archive !== input.dir) {
    archive = await checkDir(
      `${prefix} archive`,
      input.archive,
      "inputs[].archive",
      "WARN",
      "the daemon waits for it; it must be the directory of PowerMTA's move-to for this file",
    );
    emit(archive.check);
  }
  // Every matching file must be readable by us, or the daemon stalls on it.
  const places = [
    input.dir,
    ...(input.archive === undefined || input.archive === input.dir ? [] : [input.archive]),
  ];
  let count = 0;
  let bytes = 0;
  const unreadable: string[] = [];
  for (const dir of places) {
    const listing = await listInputFiles({ dir, pattern: input.pattern }).catch(() => undefined);
    for (const f of listing?.files ?? []) {
      count++;
      bytes += f.size;
      try {
        const h = await open(f.path, "r");
        await h.close();
      } catch (err) {
        unreadable.push(`${f.path} (${errno(err)})`);
      }
    }
  }
  if (unreadable.length > 0) {
    emit({
      status: "FAIL",
      name: `${prefix} files`,
      detail: `${unreadable.length} of ${count} files cannot be opened: ${unreadable.slice(0, 5).join(", ")}${unreadable.length > 5 ? ", …" : ""}`,
      fix: "make the accounting files readable by the user running pmta-ingest (e.g. its group in PowerMTA's file permissions)",
    });
  } else {
    emit({
      status: count === 0 ? "WARN" : "PASS",
      name: `${prefix} files`,
      detail:
        count === 0
          ? `no file matches ${basename(input.path)} yet`
          : `${count} matching files readable (${bytes} bytes)`,
      ...(count === 0
        ? { fix: "check inputs[].path's file pattern if PowerMTA has already written files" }
        : {}),
    });
  }
  if (input.archive !== undefined && live.dev !== undefined && archive?.dev !== undefined) {
    emit(
      live.dev === archive.dev
        ? {
            status: "PASS",
            name: `${prefix} same filesystem`,
            detail: `${input.dir} and ${input.archive} are on one filesystem (st_dev ${live.dev}): PowerMTA's move-to is a rename, files keep their inode`,
          }
        : {
            status: "FAIL",
            name: `${prefix} same filesystem`,
            detail: `${input.dir} (st_dev ${live.dev}) and ${input.archive} (st_dev ${archive.dev}) are on different filesystems: a move there is a copy plus delete, so every moved file gets a new inode — pmta-ingest then sees a new file (read again from 0: duplicates), and bytes PowerMTA writes during the copy can be lost`,
            fix: "put the move-to directory on the same volume as the accounting files (PowerMTA requires it)",
          },
    );
  }
}

// ------------------------------------------------------------------------------------------------
// State directory, checkpoint store, writable files

async function checkStateDir(dir: string, emit: (c: Check) => void, slowFsyncMs: number): Promise<void> {
  const probe = join(dir, `.doctor-probe-${process.pid}-${Date.now()}`);
  const renamed = `${probe}.done`;
  let step = "create";
  let fsyncMs = 0;
  let dirFsync = "fsync of the directory works";
  try {
    const handle = await open(probe, "w", 0o600);
    try {
      step = "write";
      await handle.write(Buffer.alloc(4096, 0x2e));
      step = "fsync";
      const t0 = performance.now();
      await handle.sync();
      fsyncMs = performance.now() - t0;
    } finally {
      await handle.close();
    }
    step = "rename";
    await rename(probe, renamed);
    step = "directory fsync";
    const d = await open(dir, "r");
    try {
      await d.sync();
    } catch (err) {
      // The store tolerates EINVAL here (some FUSE/network filesystems); say so rather than fail.
      if (errno(err) !== "EINVAL") throw err;
      dirFsync =
        "this filesystem refuses fsync on a directory (EINVAL): renames are not guaranteed durable at power loss";
    } finally {
      await d.close();
    }
    step = "remove";
    await rm(renamed);
  } catch (err) {
    await rm(probe, { force: true }).catch(() => undefined);
    await rm(renamed, { force: true }).catch(() => undefined);
    emit({
      status: "FAIL",
      name: "stateDir",
      detail: `${step} of a probe file in ${dir} failed (${errno(err)})`,
      fix: "make stateDir a writable directory on a local filesystem with free space (systemd StateDirectory=)",
    });
    return;
  }
  const slow = fsyncMs > slowFsyncMs;
  emit({
    status: slow || dirFsync.startsWith("this filesystem") ? "WARN" : "PASS",
    name: "stateDir",
    detail: `${dir}: write, fsync (${fsyncMs.toFixed(1)} ms), rename and remove work; ${dirFsync}`,
    ...(slow
      ? {
          fix: `fsync took longer than ${slowFsyncMs} ms: checkpoints will lag; use a faster local disk for stateDir`,
        }
      : {}),
  });
}

/** The load, for the start-policy check; undefined when the store could not be read. */
async function checkCheckpointStore(dir: string, emit: (c: Check) => void): Promise<LoadResult | undefined> {
  const store = new CheckpointStore(dir);
  try {
    const loaded = await store.load();
    const damage = loaded.problems.filter(
      (p) => !(p.startsWith(`${store.path}.tmp:`) && loaded.source !== "none"),
    );
    if (damage.length > 0) {
      emit({
        status: "FAIL",
        name: "checkpoint store",
        detail: `damaged: ${damage.join("; ")}${loaded.source === "none" ? "; no valid generation left" : `; the daemon uses generation ${loaded.snapshot.generation} from the ${loaded.source} file`}`,
        fix: "see pmta-ingest status; move the damaged file away to keep it for analysis — the daemon writes a new one at its next checkpoint",
      });
    } else if (loaded.source === "none") {
      emit({
        status: "PASS",
        name: "checkpoint store",
        detail: `no checkpoint yet in ${dir} (first start: startAt applies, or import a Logstash sincedb first)`,
      });
    } else {
      emit({
        status: "PASS",
        name: "checkpoint store",
        detail: `generation ${loaded.snapshot.generation}, ${loaded.snapshot.files.length} files, written ${loaded.snapshot.writtenAt}`,
      });
    }
    return loaded;
  } catch (err) {
    if (!(err instanceof CheckpointStoreError)) throw err;
    emit({ status: "FAIL", name: "checkpoint store", detail: err.message });
    return undefined;
  }
}

/**
 * Which inputs startAt will apply to at the daemon's next start (the same rule the daemon uses), so
 * that adding an input with `startAt: 24h`, or an unreadable inputs-started file after a long stop,
 * is seen before files are skipped rather than in a log line after.
 */
async function checkStartPolicy(
  config: RunConfig,
  loaded: LoadResult,
  emit: (c: Check) => void,
): Promise<void> {
  const policy = describeStartAt(config.startAt);
  const started = await readStartedInputsForReport(config.stateDir);
  const names = config.inputs.map((i) => i.name);
  const first = [...inputsAtFirstStart(names, loaded, started.inputs)];
  const skips = config.startAt.kind !== "beginning";
  if (started.problem !== undefined) {
    emit({
      status: skips ? "WARN" : "PASS",
      name: "startAt",
      detail: `${started.problem}; startAt (${policy}) applies to every input at the next start`,
      ...(skips
        ? {
            fix: `files rotated in while the daemon was stopped could be skipped: set startAt: beginning for the next start (the daemon writes the list again once every file present is checkpointed)`,
          }
        : {}),
    });
    return;
  }
  if (first.length === 0) {
    emit({
      status: "PASS",
      name: "startAt",
      detail: `every input has completed its first start: a file with no checkpoint entry is read whole (startAt ${policy} no longer applies)`,
    });
    return;
  }
  const which = first.length === names.length ? "every input" : first.join(", ");
  emit({
    status: "PASS",
    name: "startAt",
    detail: skips
      ? `at the next start, files with no checkpoint entry in ${which} are left to startAt (${policy}): what they hold before then is not sent`
      : `at the next start, files with no checkpoint entry in ${which} are read whole (startAt beginning)`,
  });
}

/**
 * A file the daemon appends to (dead letters, the file output): it must be openable for writing if it
 * exists, or creatable in an existing directory — the daemon creates the file, not its directory.
 * Nothing is changed: an existing file is opened without O_CREAT/O_TRUNC, a probe file is removed.
 */
async function checkWritableFile(name: string, path: string, key: string): Promise<Check> {
  const st = await stat(path).catch((err: unknown) => errno(err) ?? String(err));
  if (typeof st !== "string") {
    if (!st.isFile())
      return { status: "FAIL", name, detail: `${path} exists and is not a regular file`, fix: `fix ${key}` };
    try {
      const h = await open(path, "r+");
      await h.close();
      return { status: "PASS", name, detail: `${path} exists and is writable (${st.size} bytes)` };
    } catch (err) {
      return {
        status: "FAIL",
        name,
        detail: `${path} cannot be opened for writing (${errno(err)})`,
        fix: `give the user running pmta-ingest write access to ${path}`,
      };
    }
  }
  if (st !== "ENOENT") {
    return {
      status: "FAIL",
      name,
      detail: `cannot stat ${path} (${st})`,
      fix: `fix ${key} or the permissions of its directories`,
    };
  }
  const dir = dirname(path);
  const probe = join(dir, `.doctor-probe-${process.pid}-${Date.now()}`);
  try {
    const h = await open(probe, "wx", 0o600);
    await h.close();
    await rm(probe);
  } catch (err) {
    const code = errno(err);
    return {
      status: "FAIL",
      name,
      detail: `${path} does not exist and cannot be created in ${dir} (${code})`,
      fix:
        code === "ENOENT" || code === "ENOTDIR"
          ? `create the directory ${dir} (the daemon does not), or fix ${key}`
          : `give the user running pmta-ingest write access to ${dir}`,
    };
  }
  return { status: "PASS", name, detail: `${path} does not exist yet and can be created in ${dir}` };
}

// ------------------------------------------------------------------------------------------------
// Output

async function checkOutput(config: RunConfig, emit: (c: Check) => void): Promise<void> {
  const out = config.output;
  if (out.kind === "stdout") {
    emit({ status: "PASS", name: "output", detail: "stdout: nothing to check" });
    return;
  }
  if (out.kind === "file") {
    emit(await checkWritableFile("output", out.path, "output.file.path"));
    return;
  }
  const settings = parseHttpSettings(out.settings, parseDuration);
  emit(settings.format === "octeth" ? await probeConnect(settings) : await probeHttp(settings));
}

/**
 * The test request. format events: an events batch with no events (what the daemon would send if a
 * batch were empty); format ndjson: an empty body, i.e. an NDJSON document of zero lines. Both carry
 * the configured token, headers, gzip and TLS settings, so a 2xx proves the whole path. A backend that
 * insists on at least one event answers 4xx, reported as such.
 */
async function probeHttp(settings: HttpSettings): Promise<Check> {
  const name = "output";
  const target = `${settings.url.origin}${settings.url.pathname}`;
  const batchId = `pmta-ingest-doctor-${Date.now()}`;
  const body = settings.format === "ndjson" ? "" : JSON.stringify({ batchId, events: [] });
  const headers: Record<string, string> = {
    ...settings.headers,
    "content-type": settings.format === "ndjson" ? "application/x-ndjson" : "application/json",
    "idempotency-key": batchId,
    "user-agent": "pmta-ingest-doctor",
  };
  if (settings.token !== undefined) headers.authorization = `Bearer ${settings.token}`;
  if (settings.octethSignature !== undefined) headers["x-octeth-signature"] = settings.octethSignature;
  let payload = Buffer.from(body);
  if (settings.gzip) {
    payload = gzipSync(payload);
    headers["content-encoding"] = "gzip";
  }
  let client: HttpClient;
  try {
    client = new HttpClient({
      origin: settings.url,
      connectTimeoutMs: settings.connectTimeoutMs,
      headersTimeoutMs: settings.headersTimeoutMs,
      bodyTimeoutMs: settings.bodyTimeoutMs,
      maxSockets: 1,
      ...tlsOptions(settings),
    });
  } catch (err) {
    return { status: "FAIL", name, detail: `cannot set up a client for ${target}: ${String(err)}` };
  }
  const t0 = performance.now();
  try {
    const res = await client.post(`${settings.url.pathname}${settings.url.search}`, headers, payload);
    const text = res.body;
    const ms = (performance.now() - t0).toFixed(0);
    const s = res.statusCode;
    const what = `POST ${target} (format ${settings.format}, empty batch ${batchId}) → HTTP ${s} in ${ms} ms`;
    if (s >= 200 && s < 300) return { status: "PASS", name, detail: what };
    const snippet = text.trim().slice(0, 200);
    const answer = snippet === "" ? "" : `: ${JSON.stringify(snippet)}`;
    if (s === 401 || s === 403) {
      return {
        status: "FAIL",
        name,
        detail: `${what}: credentials refused${answer}`,
        fix: "check output.http.token / tokenFile / octethSignature / headers; the daemon would retry every 30 s without dropping anything",
      };
    }
    return {
      status: "FAIL",
      name,
      detail: `${what}${answer}`,
      fix:
        s === 404 || s === 405
          ? "check output.http.url (path and method POST)"
          : s >= 500
            ? "the backend is failing; the daemon would retry, check the backend's logs"
            : "the backend refuses an empty batch or this format; check output.http.url and output.http.format",
    };
  } catch (err) {
    const code = errno(err) ?? "error";
    return {
      status: "FAIL",
      name,
      detail: `POST ${target} failed after ${(performance.now() - t0).toFixed(0)} ms: ${code} (${err instanceof Error ? err.message : String(err)})`,
      fix: networkFix(code),
    };
  } finally {
    client.destroy();
  }
}

/**
 * format octeth: no request is sent. Octeth's webhook stores every event it gets (a fake bounce would
 * be processed as a real one) and an empty array is not a request Octeth defines, so only the TCP
 * (and TLS, with the configured CA and client certificate) connection is checked.
 */
async function probeConnect(settings: HttpSettings): Promise<Check> {
  const name = "output";
  const url = settings.url;
  const https = url.protocol === "https:";
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port === "" ? (https ? 443 : 80) : url.port);
  const t0 = performance.now();
  let socket: Socket | undefined;
  try {
    socket = https
      ? tlsConnect({ host, port, servername: host, ...tlsOptions(settings) })
      : netConnect({ host, port });
    socket.setTimeout(settings.connectTimeoutMs, () =>
      socket?.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })),
    );
    await once(socket, https ? "secureConnect" : "connect");
    return {
      status: "WARN",
      name,
      detail: `format octeth: test request skipped (Octeth would store any event sent); ${https ? "TLS" : "TCP"} connection to ${host}:${port} works (${(performance.now() - t0).toFixed(0)} ms)`,
      fix: "credentials are checked only by real traffic: watch the daemon's log for 'the backend refuses our credentials'",
    };
  } catch (err) {
    const code = errno(err) ?? "error";
    return {
      status: "FAIL",
      name,
      detail: `connection to ${host}:${port} failed: ${code} (${err instanceof Error ? err.message : String(err)})`,
      fix: networkFix(code),
    };
  } finally {
    socket?.destroy();
  }
}

function networkFix(code: string): string {
  if (code === "ECONNREFUSED")
    return "nothing listens at that host and port: check output.http.url and that the backend runs";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN")
    return "the host name does not resolve: check output.http.url and DNS";
  if (code.includes("TIMEOUT") || code === "ETIMEDOUT")
    return "no answer in time: check firewalls and the backend; raise output.http.connectTimeout/headersTimeout if it is just slow";
  if (/CERT|SSL|TLS|SELF_SIGNED|VERIFY/.test(code))
    return "TLS verification failed: set output.http.caFile to the CA that signed the backend's certificate, and check the host name";
  return "check output.http.url and the network path to the backend";
}

// ------------------------------------------------------------------------------------------------
// Metrics

async function checkMetrics(listen: string): Promise<Check> {
  const name = "metrics";
  if (listen === "off") return { status: "PASS", name, detail: "metrics.listen is off" };
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i);
  const port = Number(listen.slice(i + 1));
  const server = createServer();
  const free = await new Promise<string | undefined>((resolve) => {
    server.once("error", (err) => resolve(errno(err) ?? String(err)));
    server.listen({ host, port, exclusive: true }, () => resolve(undefined));
  });
  if (free === undefined) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return {
      status: "PASS",
      name,
      detail: `${listen} is free (no daemon running, or it has metrics elsewhere)`,
    };
  }
  if (free !== "EADDRINUSE") {
    return {
      status: "FAIL",
      name,
      detail: `cannot listen on ${listen} (${free})`,
      fix:
        free === "EACCES"
          ? "ports below 1024 need privileges: choose a higher port for metrics.listen"
          : "metrics.listen must be an address of this machine",
    };
  }
  // In use: a running pmta-ingest answers /healthz; anything else would make the daemon fail to start.
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}/healthz`;
  try {
    const t0 = performance.now();
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const text = (await res.text()).trim().slice(0, 120);
    const ms = (performance.now() - t0).toFixed(0);
    if (res.ok) {
      return {
        status: "PASS",
        name,
        detail: `${listen} is in use by a running daemon: GET /healthz → ${res.status} in ${ms} ms${text === "" ? "" : ` (${text})`}`,
      };
    }
    return {
      status: "FAIL",
      name,
      detail: `${listen} is in use and GET /healthz answers ${res.status}${text === "" ? "" : ` (${JSON.stringify(text)})`}`,
      fix: "if that is pmta-ingest it reports itself unhealthy: read its log; otherwise another program holds the port — choose another metrics.listen",
    };
  } catch (err) {
    return {
      status: "FAIL",
      name,
      detail: `${listen} is in use by something that does not answer GET /healthz (${errno(err) ?? String(err)})`,
      fix: "another program holds the port: the daemon could not start its metrics endpoint; choose another metrics.listen",
    };
  }
}

function errno(err: unknown): string | undefined {
  if (err instanceof Error) {
    if ("code" in err && typeof err.code === "string") return err.code;
    // fetch wraps the socket error in `cause`.
    if (err.cause !== undefined) return errno(err.cause);
  }
  return undefined;
}
