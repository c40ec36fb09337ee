#!/usr/bin/env node
// Generates grafana/dashboards/*.json. The JSON files are committed (Grafana imports them as they are);
// edit this script, run `node grafana/build-dashboards.mjs`, then `npx biome format --write grafana/`.
// `--check` exits 1 when a committed file differs from what this script builds (test/grafana-dashboards).
//
// Why a script: ~50 panels share the same datasource reference, instance filter, layout rules and
// threshold styles; writing them by hand drifts. Why plain JS: the files under grafana/ are not part
// of the TypeScript build and this must run with nothing but node.
import { readFileSync, writeFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";

/** `${name}` as Grafana writes it (a Grafana variable, not a JS template placeholder). */
function grafanaVar(name) {
  return `\${${name}}`;
}

/** Every panel and target points at the dashboard's datasource variable (see grafana/README part). */
const DS = { type: "prometheus", uid: grafanaVar("datasource") };

const INSTANCE = 'instance=~"$instance"';
const MAIL = 'instance=~"$instance", provider=~"$provider", vmta=~"$vmta"';
const BLOCK_REASONS =
  "sender_blocklisted|sender_reputation|policy_rejected|auth_failure|ptr_required|rate_limited|spam_content|content_rejected";

/** Places panels left to right, 24 columns wide, starting a new line when one does not fit. */
class Layout {
  constructor() {
    this.x = 0;
    this.y = 0;
    this.lineHeight = 0;
    this.nextId = 1;
  }
  newLine() {
    this.y += this.lineHeight;
    this.x = 0;
    this.lineHeight = 0;
  }
  place(w, h) {
    if (this.x + w > 24) this.newLine();
    const pos = { h, w, x: this.x, y: this.y };
    this.x += w;
    this.lineHeight = Math.max(this.lineHeight, h);
    return pos;
  }
  id() {
    return this.nextId++;
  }
}

function target(refId, expr, legendFormat, extra = {}) {
  return { datasource: DS, editorMode: "code", expr, legendFormat, range: true, refId, ...extra };
}

function instantTarget(refId, expr, legendFormat, extra = {}) {
  return {
    datasource: DS,
    editorMode: "code",
    expr,
    legendFormat,
    instant: true,
    range: false,
    refId,
    ...extra,
  };
}

/** Threshold steps: [baseColor, [value, color], ...]. */
function steps(base, ...rest) {
  return {
    mode: "absolute",
    steps: [{ color: base, value: null }, ...rest.map(([value, color]) => ({ color, value }))],
  };
}

const OK = steps("green");

function row(layout, title) {
  layout.newLine();
  const panel = {
    collapsed: false,
    gridPos: layout.place(24, 1),
    id: layout.id(),
    panels: [],
    title,
    type: "row",
  };
  layout.newLine();
  return panel;
}

function timeseries(layout, p) {
  const custom = {
    axisSoftMin: p.min ?? 0,
    drawStyle: p.bars ? "bars" : "line",
    fillOpacity: p.bars ? 80 : 10,
    lineWidth: 1,
    showPoints: "never",
    spanNulls: false,
    stacking: { group: "A", mode: p.stack ? "normal" : "none" },
    thresholdsStyle: { mode: p.thresholds ? "line+area" : "off" },
  };
  return {
    datasource: DS,
    description: p.description,
    fieldConfig: {
      defaults: {
        color: { mode: "palette-classic" },
        custom,
        decimals: p.decimals,
        min: p.min ?? 0,
        thresholds: p.thresholds ?? OK,
        unit: p.unit,
      },
      overrides: p.overrides ?? [],
    },
    gridPos: layout.place(p.w ?? 8, p.h ?? 8),
    id: layout.id(),
    options: {
      legend: { calcs: ["lastNotNull", "max"], displayMode: "table", placement: "bottom", showLegend: true },
      tooltip: { mode: "multi", sort: "desc" },
    },
    targets: p.targets,
    title: p.title,
    type: "timeseries",
  };
}

function stat(layout, p) {
  return {
    datasource: DS,
    description: p.description,
    fieldConfig: {
      defaults: {
        color: { mode: "thresholds" },
        decimals: p.decimals,
        mappings: p.mappings ?? [],
        noValue: p.noValue,
        thresholds: p.thresholds ?? OK,
        unit: p.unit,
      },
      overrides: [],
    },
    gridPos: layout.place(p.w ?? 3, p.h ?? 4),
    id: layout.id(),
    options: {
      colorMode: p.colorMode ?? "background",
      graphMode: "none",
      justifyMode: "center",
      orientation: "auto",
      reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
      textMode: p.textMode ?? "value_and_name",
      wideLayout: true,
    },
    targets: p.targets,
    title: p.title,
    type: "stat",
  };
}

function table(layout, p) {
  return {
    datasource: DS,
    description: p.description,
    fieldConfig: {
      defaults: {
        custom: { align: "auto", cellOptions: { type: "auto" } },
        thresholds: OK,
        unit: p.unit,
      },
      overrides: [],
    },
    gridPos: layout.place(p.w ?? 12, p.h ?? 10),
    id: layout.id(),
    options: { cellHeight: "sm", showHeader: true, sortBy: [{ desc: true, displayName: p.sortBy }] },
    targets: p.targets,
    title: p.title,
    transformations: p.transformations ?? [],
    type: "table",
  };
}

/** Draws the series named `name` as a dashed red line (a limit next to the value it bounds). */
function limitLine(name) {
  return {
    matcher: { id: "byName", options: name },
    properties: [
      { id: "color", value: { fixedColor: "red", mode: "fixed" } },
      { id: "custom.lineStyle", value: { dash: [10, 10], fill: "dash" } },
      { id: "custom.fillOpacity", value: 0 },
    ],
  };
}

const UP_DOWN = [
  {
    options: {
      0: { color: "red", index: 1, text: "DOWN" },
      1: { color: "green", index: 0, text: "UP" },
    },
    type: "value",
  },
];

function datasourceVariable() {
  return {
    // `${DS_PROMETHEUS}` is replaced by the datasource chosen in the Grafana import dialog (__inputs);
    // a provisioned file keeps the literal, which matches no datasource, so Grafana falls back to the
    // default Prometheus datasource — panels only ever reference `${datasource}`, never DS_PROMETHEUS.
    current: { selected: false, text: grafanaVar("DS_PROMETHEUS"), value: grafanaVar("DS_PROMETHEUS") },
    hide: 0,
    includeAll: false,
    label: "Data source",
    multi: false,
    name: "datasource",
    options: [],
    query: "prometheus",
    refresh: 1,
    regex: "",
    skipUrlSync: false,
    type: "datasource",
  };
}

function queryVariable(name, label, query, { allValue } = {}) {
  return {
    allValue,
    current: {},
    datasource: DS,
    definition: query,
    hide: 0,
    includeAll: true,
    label,
    multi: true,
    name,
    options: [],
    query: { qryType: 1, query, refId: "PrometheusVariableQueryEditor-VariableQuery" },
    refresh: 2,
    regex: "",
    skipUrlSync: false,
    sort: 1,
    type: "query",
  };
}

function dashboard({ uid, title, description, tags, panels, variables }) {
  return {
    __inputs: [
      {
        description: "Prometheus that scrapes pmta-ingest (job pmta-ingest, :9464/metrics)",
        label: "Prometheus",
        name: "DS_PROMETHEUS",
        pluginId: "prometheus",
        pluginName: "Prometheus",
        type: "datasource",
      },
    ],
    __requires: [
      { id: "grafana", name: "Grafana", type: "grafana", version: "10.4.0" },
      { id: "prometheus", name: "Prometheus", type: "datasource", version: "1.0.0" },
      { id: "stat", name: "Stat", type: "panel", version: "" },
      { id: "table", name: "Table", type: "panel", version: "" },
      { id: "timeseries", name: "Time series", type: "panel", version: "" },
    ],
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: "grafana", uid: "-- Grafana --" },
          enable: true,
          hide: true,
          iconColor: "rgba(0, 211, 255, 1)",
          name: "Annotations & Alerts",
          type: "dashboard",
        },
      ],
    },
    description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [
      {
        asDropdown: false,
        icon: "dashboard",
        includeVars: true,
        keepTime: true,
        tags: ["pmta-ingest"],
        targetBlank: false,
        title: "pmta-ingest",
        type: "dashboards",
      },
    ],
    panels,
    refresh: "1m",
    schemaVersion: 39,
    tags,
    templating: { list: variables },
    time: { from: "now-6h", to: "now" },
    timepicker: {},
    timezone: "",
    title,
    uid,
    version: 1,
    weekStart: "",
  };
}

const instanceVariable = () =>
  queryVariable("instance", "Instance", "label_values(pmta_ingest_build_info, instance)");

// ---------------------------------------------------------------------------------------------------
// Pipeline health
// ---------------------------------------------------------------------------------------------------

function pipeline() {
  const L = new Layout();
  const panels = [];
  const add = (p) => panels.push(p);

  add(row(L, "Status"));
  add(
    stat(L, {
      title: "Scrape",
      description:
        "Whether Prometheus can scrape the daemon's /metrics. DOWN: the process is not running or metrics.listen is not reachable — check `systemctl status pmta-ingest`, `journalctl -u pmta-ingest` and `curl http://127.0.0.1:9464/healthz` on the host.",
      mappings: UP_DOWN,
      thresholds: steps("red", [1, "green"]),
      noValue: "DOWN",
      textMode: "value",
      targets: [target("A", `max by (instance) (up{${INSTANCE}})`, "{{instance}}")],
    }),
  );
  add(
    stat(L, {
      title: "Version",
      description: "Daemon and Node.js versions (pmta_ingest_build_info). Several values: instances differ.",
      colorMode: "none",
      textMode: "name",
      targets: [
        target("A", `pmta_ingest_build_info{${INSTANCE}}`, "{{version}} · node {{node_version}}", {
          instant: true,
          range: false,
        }),
      ],
    }),
  );
  add(
    stat(L, {
      title: "Uptime",
      description:
        "Time since the daemon started. Orange (restarted in the last 10 minutes) more than once in a row means it keeps crashing: read `journalctl -u pmta-ingest` for the last error.",
      unit: "s",
      thresholds: steps("orange", [600, "green"]),
      textMode: "value",
      targets: [target("A", `time() - pmta_ingest_start_time_seconds{${INSTANCE}}`, "{{instance}}")],
    }),
  );
  add(
    stat(L, {
      title: "Output",
      description:
        "1 when the last delivery attempt of the output succeeded. DOWN: the API (or file) rejects or does not answer — see 'Retries by cause' for why (auth, 429, 5xx, network) and the daemon's log; events wait in flight and nothing is lost.",
      mappings: UP_DOWN,
      thresholds: steps("red", [1, "green"]),
      noValue: "no data",
      targets: [target("A", `pmta_ingest_output_up{${INSTANCE}}`, "{{output}}")],
    }),
  );
  add(
    stat(L, {
      title: "Since last checkpoint",
      description:
        "Seconds since the last good checkpoint. An idle daemon does not rewrite an unchanged checkpoint, so a large value is only bad while records are being delivered. Red with traffic: checkpoint writes fail — check free space and permissions of the state directory.",
      unit: "s",
      thresholds: steps("green", [120, "orange"], [300, "red"]),
      targets: [
        target(
          "A",
          `time() - max by (instance) (pmta_ingest_checkpoint_last_success_timestamp_seconds{${INSTANCE}})`,
          "{{instance}}",
        ),
      ],
    }),
  );
  add(
    stat(L, {
      title: "Oldest unacked",
      description:
        "Age of the oldest event read but not yet acknowledged by the output. Red (> 5 min): the output is down or too slow — see the Output row; the window fills and reading stops until it recovers.",
      unit: "s",
      thresholds: steps("green", [60, "orange"], [300, "red"]),
      targets: [
        target(
          "A",
          `max by (instance) (pmta_ingest_oldest_unacked_age_seconds{${INSTANCE}})`,
          "{{instance}}",
        ),
      ],
    }),
  );
  add(
    stat(L, {
      title: "Unread (lag)",
      description:
        "Bytes PowerMTA has written and the daemon has not read yet, all inputs. Red (> 50 MiB): the daemon falls behind — check output latency, in-flight vs limit (backpressure) and CPU.",
      unit: "bytes",
      thresholds: steps("green", [10485760, "orange"], [52428800, "red"]),
      targets: [target("A", `sum by (instance) (pmta_ingest_unread_bytes{${INSTANCE}})`, "{{instance}}")],
    }),
  );
  add(
    stat(L, {
      title: "Dead letters (range)",
      description:
        "Records set aside in the dead-letter file (<stateDir>/dead-letter.ndjson) during the selected range. Red: open the file, fix the cause (see 'Dead letters by reason') and replay the entries.",
      thresholds: steps("green", [1, "red"]),
      unit: "short",
      decimals: 0,
      noValue: "0",
      targets: [
        target(
          "A",
          `sum by (instance) (increase(pmta_ingest_dead_letters_total{${INSTANCE}}[$__range]))`,
          "{{instance}}",
          { instant: true, range: false },
        ),
      ],
    }),
  );

  add(row(L, "Throughput"));
  add(
    timeseries(L, {
      title: "Records read / s by input and type",
      description:
        "Accounting records decoded per second (type b = bounce, rb = remote bounce, f = feedback loop, d = delivery, t = transient). A drop to zero while PowerMTA sends mail: the input path or glob no longer matches — check the config and 'Files tracked'.",
      unit: "ops",
      targets: [
        target(
          "A",
          `sum by (input, type) (rate(pmta_ingest_records_read_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}} {{type}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Events delivered / s by input and kind",
      description:
        "Events acknowledged by the output. Below 'records read' for long: the output is slow or failing (see the Output row).",
      unit: "ops",
      targets: [
        target(
          "A",
          `sum by (input, kind) (rate(pmta_ingest_events_delivered_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}} {{kind}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Bytes read / s by input",
      description: "Accounting-file bytes read per second, per input.",
      unit: "Bps",
      targets: [
        target(
          "A",
          `sum by (input) (rate(pmta_ingest_bytes_read_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}}",
        ),
      ],
    }),
  );

  add(row(L, "Lag and backpressure"));
  add(
    timeseries(L, {
      title: "Unread bytes per input (lag)",
      description:
        "Bytes written by PowerMTA and not read yet. Growing steadily (red zone above 50 MiB): the daemon cannot keep up — check output latency and retries, in-flight vs limit and CPU. Alert: PmtaIngestLagGrowing.",
      unit: "bytes",
      thresholds: steps("transparent", [52428800, "red"]),
      targets: [target("A", `sum by (input) (pmta_ingest_unread_bytes{${INSTANCE}})`, "{{input}}")],
    }),
  );
  add(
    timeseries(L, {
      title: "Oldest unacked event age",
      description:
        "Age of the oldest event not yet acknowledged by the output; 0 when none. Above 300 s (red): the output is stuck — alert PmtaIngestOldestUnackedAge.",
      unit: "s",
      thresholds: steps("transparent", [300, "red"]),
      targets: [
        target(
          "A",
          `max by (instance) (pmta_ingest_oldest_unacked_age_seconds{${INSTANCE}})`,
          "{{instance}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "In-flight events vs limit",
      description:
        "Events handed to the output and not yet acknowledged, against inFlight.maxEvents (dashed). At the limit the daemon stops reading (backpressure): the output is the bottleneck.",
      unit: "short",
      overrides: [limitLine("limit")],
      targets: [
        target("A", `sum by (instance) (pmta_ingest_in_flight_events{${INSTANCE}})`, "in flight"),
        target("B", `max by (instance) (pmta_ingest_in_flight_limit_events{${INSTANCE}})`, "limit"),
      ],
    }),
  );

  add(row(L, "Output"));
  add(
    timeseries(L, {
      title: "Request latency p50 / p99",
      description:
        "Duration of one request (HTTP) or write (file, stdout), from the histogram. p99 near the request timeout: the API is overloaded; expect timeout retries.",
      unit: "s",
      targets: [
        target(
          "A",
          `histogram_quantile(0.5, sum by (output, le) (rate(pmta_ingest_output_request_duration_seconds_bucket{${INSTANCE}}[$__rate_interval])))`,
          "{{output}} p50",
        ),
        target(
          "B",
          `histogram_quantile(0.99, sum by (output, le) (rate(pmta_ingest_output_request_duration_seconds_bucket{${INSTANCE}}[$__rate_interval])))`,
          "{{output}} p99",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Requests / s by outcome",
      description:
        "Requests per outcome: success, retry (will be retried), rejected (the API refused the batch: its events go to the dead-letter file), error.",
      unit: "reqps",
      stack: true,
      targets: [
        target(
          "A",
          `sum by (output, outcome) (rate(pmta_ingest_output_request_duration_seconds_count{${INSTANCE}}[$__rate_interval]))`,
          "{{output}} {{outcome}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Retries by cause",
      description:
        "Retries per minute by cause. auth (401/403): the API token is wrong or expired — fix it in the output configuration. rate_limited (429): ask for a higher quota or lower batch size. server_error/timeout: the API is unhealthy. network: DNS, firewall or TLS. error: the output file cannot be written (disk full, permissions).",
      unit: "opm",
      bars: true,
      stack: true,
      targets: [
        target(
          "A",
          `60 * sum by (output, cause) (rate(pmta_ingest_output_retries_total{${INSTANCE}}[$__rate_interval]))`,
          "{{output}} {{cause}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Batch size (events)",
      description:
        "Average and p99 events per batch. Small batches at high throughput mean batch.maxWait is too short; batches always at batch.maxEvents mean the daemon is catching up.",
      unit: "short",
      targets: [
        target(
          "A",
          `sum by (output) (rate(pmta_ingest_batch_events_sum{${INSTANCE}}[$__rate_interval])) / sum by (output) (rate(pmta_ingest_batch_events_count{${INSTANCE}}[$__rate_interval]))`,
          "{{output}} avg",
        ),
        target(
          "B",
          `histogram_quantile(0.99, sum by (output, le) (rate(pmta_ingest_batch_events_bucket{${INSTANCE}}[$__rate_interval])))`,
          "{{output}} p99",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Batch size (bytes)",
      description: "Average and p99 bytes per batch (the API's request body size).",
      unit: "bytes",
      targets: [
        target(
          "A",
          `sum by (output) (rate(pmta_ingest_batch_bytes_sum{${INSTANCE}}[$__rate_interval])) / sum by (output) (rate(pmta_ingest_batch_bytes_count{${INSTANCE}}[$__rate_interval]))`,
          "{{output}} avg",
        ),
        target(
          "B",
          `histogram_quantile(0.99, sum by (output, le) (rate(pmta_ingest_batch_bytes_bucket{${INSTANCE}}[$__rate_interval])))`,
          "{{output}} p99",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "In-flight bytes",
      description: "Bytes of the events in flight (bounded by inFlight.maxBytes).",
      unit: "bytes",
      targets: [target("A", `sum by (instance) (pmta_ingest_in_flight_bytes{${INSTANCE}})`, "{{instance}}")],
    }),
  );

  add(row(L, "Errors and integrity"));
  add(
    timeseries(L, {
      title: "Dead letters by reason",
      description:
        "Records set aside per minute in <stateDir>/dead-letter.ndjson. partial-record / unterminated-quote: a file was cut or rewritten; record-too-long: raise maxRecordBytes or fix the PowerMTA acct-file fields; rejected-by-output: the API refused events (its log says why). Fix the cause, then replay the file.",
      unit: "opm",
      bars: true,
      stack: true,
      targets: [
        target(
          "A",
          `60 * sum by (input, reason) (rate(pmta_ingest_dead_letters_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}} {{reason}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Decode warnings",
      description:
        "Records decoded with a warning, per minute (quoting, encoding, columns, type, time, bounce). A sudden rise after a PowerMTA change: the acct-file record fields changed — compare the header of the current file with the previous one.",
      unit: "opm",
      targets: [
        target(
          "A",
          `60 * sum by (input, warning) (rate(pmta_ingest_decode_warnings_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}} {{warning}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Rotations and checkpoint invalidations",
      description:
        "File rotations per minute, and checkpoints that no longer matched their file (identity_mismatch: inode reused or file rewritten; truncation: file shrank). Invalidations outside a planned cleanup mean something rewrites accounting files in place — check PowerMTA's log rotation and any cleanup job.",
      unit: "opm",
      overrides: [
        {
          matcher: { id: "byRegexp", options: "/invalidated/" },
          properties: [{ id: "color", value: { fixedColor: "red", mode: "fixed" } }],
        },
      ],
      targets: [
        target(
          "A",
          `60 * sum by (input) (rate(pmta_ingest_rotations_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}} rotations",
        ),
        target(
          "B",
          `60 * sum by (input, cause) (rate(pmta_ingest_checkpoint_invalidations_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}} invalidated ({{cause}})",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Checkpoint writes and failures",
      description:
        "Checkpoints written and failed per minute. Any failure: the state directory is full, read-only or has wrong permissions — fix it; until then a restart re-sends everything since the last good checkpoint.",
      unit: "opm",
      overrides: [
        {
          matcher: { id: "byName", options: "failures" },
          properties: [{ id: "color", value: { fixedColor: "red", mode: "fixed" } }],
        },
      ],
      targets: [
        target(
          "A",
          `60 * sum by (instance) (rate(pmta_ingest_checkpoint_writes_total{${INSTANCE}}[$__rate_interval]))`,
          "writes",
        ),
        target(
          "B",
          `60 * sum by (instance) (rate(pmta_ingest_checkpoint_write_failures_total{${INSTANCE}}[$__rate_interval]))`,
          "failures",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Seconds since last checkpoint",
      description:
        "Time since the last good checkpoint. A sawtooth is normal; a ramp while events are delivered means checkpoints fail (alert PmtaIngestCheckpointFailing). A ramp while idle is normal: an unchanged checkpoint is not rewritten.",
      unit: "s",
      thresholds: steps("transparent", [300, "red"]),
      targets: [
        target(
          "A",
          `time() - max by (instance) (pmta_ingest_checkpoint_last_success_timestamp_seconds{${INSTANCE}})`,
          "{{instance}}",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Lost bytes",
      description:
        "Bytes of files deleted before the daemon could read them — events that will never be delivered. Any value: PowerMTA (or a cleanup job) deletes accounting files too early; configure the input's archive directory or keep files longer, and re-feed the lost files if you still have them (`pmta-ingest replay`).",
      unit: "bytes",
      bars: true,
      thresholds: steps("transparent", [1, "red"]),
      targets: [
        target(
          "A",
          `sum by (input) (increase(pmta_ingest_lost_bytes_total{${INSTANCE}}[$__rate_interval]))`,
          "{{input}}",
        ),
      ],
    }),
  );

  add(row(L, "Files"));
  add(
    timeseries(L, {
      title: "Files tracked and open per input",
      description:
        "Files with state (live + archived) and open descriptors. Tracked files growing without bound: the archive glob keeps old files — lower checkpointRetention or clean the archive.",
      unit: "short",
      w: 12,
      targets: [
        target("A", `sum by (input) (pmta_ingest_files_tracked{${INSTANCE}})`, "{{input}} tracked"),
        target("B", `sum by (input) (pmta_ingest_files_open{${INSTANCE}})`, "{{input}} open"),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Process file descriptors",
      description: "Open descriptors of the process; near the limit (dashed) opening new files fails.",
      unit: "short",
      w: 12,
      overrides: [limitLine("limit")],
      targets: [
        target("A", `max by (instance) (process_open_fds{${INSTANCE}})`, "open"),
        target("B", `max by (instance) (process_max_fds{${INSTANCE}})`, "limit"),
      ],
    }),
  );

  add(row(L, "Process"));
  add(
    timeseries(L, {
      title: "Memory",
      description:
        "Resident memory and V8 heap. Steady growth over days with flat traffic is a leak — record a heap snapshot and open an issue.",
      unit: "bytes",
      targets: [
        target("A", `max by (instance) (process_resident_memory_bytes{${INSTANCE}})`, "resident"),
        target("B", `max by (instance) (nodejs_heap_size_used_bytes{${INSTANCE}})`, "heap used"),
        target("C", `max by (instance) (nodejs_heap_size_total_bytes{${INSTANCE}})`, "heap total"),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "CPU",
      description:
        "CPU used, as a fraction of one core (the daemon is single-threaded: 100% is its ceiling). Near 100% while lag grows: the daemon is CPU-bound — give it a faster core or split inputs over two daemons.",
      unit: "percentunit",
      thresholds: steps("transparent", [0.9, "red"]),
      targets: [
        target(
          "A",
          `sum by (instance) (rate(process_cpu_seconds_total{${INSTANCE}}[$__rate_interval]))`,
          "cpu",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Event-loop lag",
      description:
        "Node.js event-loop delay (p50, p99). Above 100 ms the daemon answers /metrics and the API slowly; usually a symptom of CPU saturation.",
      unit: "s",
      thresholds: steps("transparent", [0.1, "red"]),
      targets: [
        target("A", `max by (instance) (nodejs_eventloop_lag_p50_seconds{${INSTANCE}})`, "p50"),
        target("B", `max by (instance) (nodejs_eventloop_lag_p99_seconds{${INSTANCE}})`, "p99"),
      ],
    }),
  );

  return dashboard({
    uid: "pmta-ingest-pipeline",
    title: "pmta-ingest — pipeline health",
    description:
      "Is pmta-ingest reading PowerMTA accounting files, delivering events and checkpointing? One row per concern; every panel says what to do when it is red.",
    tags: ["pmta-ingest", "powermta"],
    panels,
    variables: [datasourceVariable(), instanceVariable()],
  });
}

// ---------------------------------------------------------------------------------------------------
// Deliverability
// ---------------------------------------------------------------------------------------------------

function deliverability() {
  const L = new Layout();
  const panels = [];
  const add = (p) => panels.push(p);
  const mail = (sel) => `pmta_ingest_mail_events_total{${sel}, ${MAIL}}`;
  const perMin = (by, sel) => `60 * sum by (${by}) (rate(${mail(sel)}[$__rate_interval]))`;
  const inRange = (sel) => `sum(increase(${mail(sel)}[$__range]))`;
  const HARD = 'kind="bounce", hard="true"';
  const SOFT = 'kind="bounce", hard="false"';
  const ATTEMPTS = 'kind=~"bounce|delivery"';
  const BLOCKS = `reason=~"${BLOCK_REASONS}"`;
  const rangeStat = (title, description, expr, extra = {}) =>
    stat(L, {
      title,
      description,
      w: 4,
      unit: "short",
      decimals: 0,
      noValue: "0",
      textMode: "value",
      targets: [target("A", expr, title, { instant: true, range: false })],
      ...extra,
    });

  add(row(L, "Selected range"));
  add(
    rangeStat(
      "Hard bounces",
      "Hard (permanent) bounces in the selected range; these addresses must be suppressed.",
      inRange(HARD),
      { colorMode: "none" },
    ),
  );
  add(
    rangeStat("Soft bounces", "Soft (temporary) bounces in the selected range.", inRange(SOFT), {
      colorMode: "none",
    }),
  );
  add(
    rangeStat(
      "Hard-bounce rate",
      "Hard bounces / (bounces + deliveries) in the range. Only bounce files configured: this is the hard share of bounces and runs higher. Red (> 5%): list hygiene problem — find the vmta/job below, stop the campaign and check where the list came from.",
      `${inRange(HARD)} / ${inRange(ATTEMPTS)}`,
      { unit: "percentunit", decimals: 2, thresholds: steps("green", [0.02, "orange"], [0.05, "red"]) },
    ),
  );
  add(
    rangeStat(
      "Complaints",
      "Feedback-loop complaints in the range. Rising: check the campaign's consent and unsubscribe link; complaining addresses must be suppressed.",
      inRange('kind="complaint"'),
      { thresholds: steps("green", [1, "orange"]) },
    ),
  );
  add(
    rangeStat(
      "Blocks & reputation",
      "Bounces and deferrals caused by blocks or reputation (blocklist, reputation, policy, auth, PTR, rate limit, content). Red: see the Blocks row for the provider and vmta, then check blocklists, SPF/DKIM/DMARC and the provider's postmaster tools.",
      inRange(BLOCKS),
      { thresholds: steps("green", [1, "orange"], [100, "red"]) },
    ),
  );
  add(
    rangeStat(
      "Blocklisted",
      "Events whose reason is sender_blocklisted. Red: an IP or domain is listed — the bounce text names the list; request delisting and pause the vmta towards that provider.",
      inRange('reason="sender_blocklisted"'),
      { thresholds: steps("green", [1, "red"]) },
    ),
  );

  add(row(L, "Bounces"));
  add(
    timeseries(L, {
      title: "Bounce events by reason",
      description:
        "Bounces per minute by normalized reason. invalid_mailbox dominating: list hygiene; sender_* / policy_* reasons: see the Blocks row.",
      unit: "cpm",
      w: 12,
      stack: true,
      targets: [target("A", perMin("reason", 'kind="bounce"'), "{{reason}}")],
    }),
  );
  add(
    timeseries(L, {
      title: "Hard vs soft bounces",
      description:
        "Hard (permanent) and soft (temporary) bounces per minute. A hard-bounce spike on one send: a bad list — alert PmtaIngestHardBounceSpike.",
      unit: "cpm",
      w: 12,
      overrides: [
        {
          matcher: { id: "byName", options: "hard" },
          properties: [{ id: "color", value: { fixedColor: "red", mode: "fixed" } }],
        },
        {
          matcher: { id: "byName", options: "soft" },
          properties: [{ id: "color", value: { fixedColor: "yellow", mode: "fixed" } }],
        },
      ],
      targets: [target("A", perMin("kind", HARD), "hard"), target("B", perMin("kind", SOFT), "soft")],
    }),
  );
  add(
    timeseries(L, {
      title: "Hard-bounce rate",
      description:
        "Hard bounces / (bounces + deliveries). Without delivery records it is the hard share of bounces. Above 2% (orange) the list needs cleaning; above 5% (red) providers start throttling — stop the send and find the source by vmta and job.",
      unit: "percentunit",
      w: 12,
      thresholds: steps("transparent", [0.02, "orange"], [0.05, "red"]),
      targets: [
        target(
          "A",
          `sum(rate(${mail(HARD)}[$__rate_interval])) / sum(rate(${mail(ATTEMPTS)}[$__rate_interval]))`,
          "hard-bounce rate",
        ),
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Top reasons over time",
      description:
        "The 10 most frequent non-delivery reasons at each moment (bounces, deferrals, complaints) per minute. A new reason at the top is what changed.",
      unit: "cpm",
      w: 12,
      targets: [
        target("A", `topk(10, ${perMin("reason", 'kind=~"bounce|deferral|complaint"')})`, "{{reason}}"),
      ],
    }),
  );

  add(row(L, "Blocks and reputation"));
  const blockHelp =
    "Bounces and deferrals whose reason is a block or reputation problem (sender_blocklisted, sender_reputation, policy_rejected, auth_failure, ptr_required, rate_limited, spam_content, content_rejected), per minute. What to do: sender_blocklisted → find the list in the bounce text, request delisting; sender_reputation / spam_content → slow down and check the provider's postmaster tools; auth_failure → check SPF/DKIM/DMARC for the sending domain; ptr_required → fix reverse DNS of the vmta IP; rate_limited → lower the vmta's rate towards the provider; policy_rejected / content_rejected → read the diagnostic and the provider's policy page.";
  add(
    timeseries(L, {
      title: "Blocks and reputation by provider",
      description: blockHelp,
      unit: "cpm",
      w: 12,
      stack: true,
      targets: [target("A", perMin("provider, reason", BLOCKS), "{{provider}} {{reason}}")],
    }),
  );
  add(
    timeseries(L, {
      title: "Blocks and reputation by vmta",
      description: blockHelp,
      unit: "cpm",
      w: 12,
      stack: true,
      targets: [target("A", perMin("vmta, reason", BLOCKS), "{{vmta}} {{reason}}")],
    }),
  );

  add(row(L, "Complaints"));
  const complaintHelp =
    "Feedback-loop complaints per minute. A spike on one vmta or provider: stop that campaign, check how the addresses were collected and that unsubscribe works; complaining addresses must be suppressed. Alert: PmtaIngestComplaintSpike.";
  add(
    timeseries(L, {
      title: "Complaints by provider",
      description: complaintHelp,
      unit: "cpm",
      w: 12,
      stack: true,
      targets: [target("A", perMin("provider", 'kind="complaint"'), "{{provider}}")],
    }),
  );
  add(
    timeseries(L, {
      title: "Complaints by vmta",
      description: complaintHelp,
      unit: "cpm",
      w: 12,
      stack: true,
      targets: [target("A", perMin("vmta", 'kind="complaint"'), "{{vmta}}")],
    }),
  );

  add(row(L, "Reasons and jobs"));
  add(
    table(L, {
      title: "Top reasons in range",
      description:
        "The 20 most frequent non-delivery reasons over the selected range, with kind and hardness. Start at the top: it is where most mail is lost.",
      sortBy: "Events",
      h: 10,
      targets: [
        instantTarget(
          "A",
          `topk(20, sum by (kind, reason, hard) (increase(${mail('kind!="delivery"')}[$__range])))`,
          "",
          { format: "table" },
        ),
      ],
      transformations: [
        {
          id: "organize",
          options: {
            excludeByName: { Time: true },
            indexByName: { kind: 0, reason: 1, hard: 2, Value: 3 },
            renameByName: { Value: "Events" },
          },
        },
      ],
    }),
  );
  add(
    timeseries(L, {
      title: "Hard bounces per PowerMTA job",
      description:
        "Hard bounces per minute for the 10 worst PowerMTA jobs (jobId). One job far above the others: its list is bad — pause it. Not filtered by provider/vmta (the per-job metric has no such labels).",
      unit: "cpm",
      w: 12,
      h: 10,
      targets: [
        target(
          "A",
          `topk(10, 60 * sum by (job_id) (rate(pmta_ingest_job_events_total{kind="bounce", hard="true", ${INSTANCE}}[$__rate_interval])))`,
          "job {{job_id}}",
        ),
      ],
    }),
  );

  return dashboard({
    uid: "pmta-ingest-deliverability",
    title: "pmta-ingest — deliverability",
    description:
      "Bounces, blocks, reputation problems and complaints classified by pmta-ingest, by provider, vmta and PowerMTA job.",
    tags: ["pmta-ingest", "powermta", "deliverability"],
    panels,
    variables: [
      datasourceVariable(),
      instanceVariable(),
      queryVariable(
        "provider",
        "Provider",
        'label_values(pmta_ingest_mail_events_total{instance=~"$instance"}, provider)',
        { allValue: ".*" },
      ),
      queryVariable(
        "vmta",
        "vmta",
        'label_values(pmta_ingest_mail_events_total{instance=~"$instance"}, vmta)',
        {
          allValue: ".*",
        },
      ),
    ],
  });
}

const outputs = [
  ["pmta-ingest-pipeline.json", pipeline()],
  ["pmta-ingest-deliverability.json", deliverability()],
];

const check = process.argv.includes("--check");
let stale = 0;
for (const [name, doc] of outputs) {
  const file = new URL(`./dashboards/${name}`, import.meta.url);
  // Round-trip through JSON so `undefined` fields disappear exactly as they do in the file.
  const built = JSON.parse(JSON.stringify(doc));
  if (check) {
    let current;
    try {
      current = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      current = String(err);
    }
    if (!isDeepStrictEqual(current, built)) {
      stale++;
      console.error(
        `grafana/dashboards/${name} differs from grafana/build-dashboards.mjs: run it and commit`,
      );
    }
  } else {
    writeFileSync(file, `${JSON.stringify(built, null, 2)}\n`);
    console.log(`wrote grafana/dashboards/${name}`);
  }
}
process.exitCode = stale === 0 ? 0 : 1;
