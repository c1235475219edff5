#!/usr/bin/env node
// Drives the real @lambdatest/node-rest-client (v1 and v2 clients) against the ledger.
// env: LEDGER_URL = http://host:port/compat/lambdatest/automation/api/v1 (no trailing slash),
// SID and SID2 = existing sessions, STOPPED = a stopped session with a HAR log, MISSING = an
// unknown id, LT_USER and LT_KEY = the ledger key's name and the key (the client's username
// and access key). Prints {step: {ok, result|error}}.
"use strict";
const lt = require("@lambdatest/node-rest-client");
const ApiClientV1 = require("@lambdatest/node-rest-client/lib/api_client");
const ApiClientV2 = require("@lambdatest/node-rest-client/lib/api_client_v2");

const BASE = process.env.LEDGER_URL.replace(/\/+$/, "");
const { SID, SID2, STOPPED, MISSING } = process.env;
const creds = { username: process.env.LT_USER, accessKey: process.env.LT_KEY };

const v1 = lt.AutomationClient(creds);
ApiClientV1.baseUrl = BASE; // static: the only way to point the v1 client elsewhere
const v2 = lt.AutomationClientV2(creds);
// The client wraps no HAR or upload call: its own request layer sends them as it sends the rest.
const raw = new ApiClientV2(creds);
ApiClientV2.apiBaseUrl = BASE; // static, and overwritten by the constructor: set it after

const cb = (fn) =>
  new Promise((resolve) =>
    fn((err, res) => resolve(err ? { ok: false, error: String(err.message) } : { ok: true, result: res }))
  );
const pr = (p) =>
  p.then(
    (r) => ({ ok: true, result: r }),
    (e) => ({ ok: false, error: String(e && e.message), status: e.response && e.response.status,
              data: e.response && e.response.data })
  );

(async () => {
  const out = {};
  out.v1_list = await cb((k) =>
    v1.fetchSessions({ build_id: "b1", offset: 0, limit: 10, status: "running,completed",
                       fromdate: "2024-05-01", todate: "2024-05-31", sort: "asc.start_time" }, k));
  out.v2_list = await pr(v2.fetchSessions({ build_id: "b1", limit: 1, sort: "desc.start_time" }));
  out.v1_detail = await cb((k) => v1.fetchSessionById(SID, k));
  out.v2_detail = await pr(v2.fetchSessionById(SID2));
  out.v1_missing = await cb((k) => v1.fetchSessionById(MISSING, k));
  out.v2_missing = await pr(v2.fetchSessionById(MISSING));
  out.v1_update = await cb((k) =>
    v1.updateSessionById(SID, { name: "v1 renamed", status_ind: "passed", remarks: "ok" }, k));
  // v2 sends the JSON text labelled application/x-www-form-urlencoded
  out.v2_update = await pr(v2.updateSessionById(SID2, { name: "v2 renamed", status_ind: "failed" }));
  out.v1_screenshots = await cb((k) => v1.fetchSessionScreenshot(SID, k));
  out.v1_video = await cb((k) => v1.fetchSessionVideo(SID, k));
  out.v1_log_command = await cb((k) => v1.fetchSessionCommandLogs(SID, k));
  out.v2_log_console = await pr(v2.fetchSessionConsoleLogs(SID));
  out.v2_network_har = await pr(raw.makeRequest("GET", `/sessions/${STOPPED}/log/network.har`));
  out.v2_full_har = await pr(raw.makeRequest("GET", `/sessions/${STOPPED}/log/full-har`));
  out.v2_exceptions_after_stop = await pr(
    raw.makeRequest("POST", `/sessions/${STOPPED}/exceptions`, { exception: ["late"] }));
  out.v1_delete = await cb((k) => v1.deleteSessionById(SID, k));
  out.v2_delete = await pr(v2.deleteSessionById(SID2));
  out.v1_after_delete = await cb((k) => v1.fetchSessionById(SID, k));
  console.log(JSON.stringify(out));
})();
