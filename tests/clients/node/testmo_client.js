#!/usr/bin/env node
// Drives the real @testmo/testmo-api SessionsApi against the ledger.
// env: LEDGER_URL = http://host:port/compat/testmo/api/v1, PROJECT, SESSION (a Testmo id),
// MISSING (an unknown id), TM_KEY (a ledger key, sent as the bearer token).
// Prints {step: {ok, result|status,body}}.
"use strict";
const testmo = require("@testmo/testmo-api");

// The generated client puts "/api/v1" in every path: its basePath is the part before it.
const basePath = process.env.LEDGER_URL.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
const client = new testmo.ApiClient(basePath);
client.authentications["bearerAuth"].accessToken = process.env.TM_KEY;
const api = new testmo.SessionsApi(client);
const PROJECT = Number(process.env.PROJECT);

const pr = (p) =>
  p.then(
    (r) => ({ ok: true, result: r }),
    (e) => ({ ok: false, status: e.status, body: e.body, error: String(e.error || e) })
  );

(async () => {
  const out = {};
  out.open_page = await pr(
    api.getSessionPage(PROJECT, {
      page: 1, perPage: 2, isClosed: false, sort: "sessions:created_at", order: "asc",
      createdAfter: new Date("2024-05-01T00:00:00Z"), expands: "users,statuses",
    })
  );
  out.open_page2 = await pr(
    api.getSessionPage(PROJECT, { page: 2, perPage: 2, isClosed: false, sort: "sessions:created_at",
                                  order: "asc" })
  );
  out.closed_array_expands = await pr(
    api.getSessionPage(PROJECT, { isClosed: true, expands: ["users", "milestones"] })
  );
  out.all = await pr(api.getSessionPage(PROJECT));
  out.detail = await pr(api.getSession(Number(process.env.SESSION), { expands: "users" }));
  out.missing = await pr(api.getSession(Number(process.env.MISSING)));
  out.bad_sort = await pr(api.getSessionPage(PROJECT, { sort: "sessions:colour" }));
  console.log(JSON.stringify(out));
})();
