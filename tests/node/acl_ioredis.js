// ioredis authenticates as an ACL user (issue 13): username + password,
// a NOPERM refusal, and WRONGPASS for a bad password.
//   NODE_PATH=<dir>/node_modules node acl_ioredis.js RESP_PORT
// Run by tests/node/security_integration_test.cpp (ioredis 5 from npm in the
// build tree). Prints one line per step; exits 1 on an unexpected result.
"use strict";
const Redis = require("ioredis");

async function main() {
  const port = Number(process.argv[2]);
  const r = new Redis({
    port,
    username: "alice",
    password: "p",
    lazyConnect: true,
    enableReadyCheck: false, // INFO is not among alice's commands
  });
  await r.connect();
  console.log("get " + (await r.get("cached:x")));
  try {
    await r.set("cached:x", "no");
    console.log("set allowed");
  } catch (e) {
    console.log("denied " + e.message);
  }
  r.disconnect();
  const bad = new Redis({
    port,
    username: "alice",
    password: "bad",
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let seen = "";
  bad.on("error", (e) => {
    seen += " " + e.message;
  });
  try {
    await bad.connect();
    await bad.ping();
    console.log("bad password accepted");
  } catch (e) {
    console.log("auth failed " + e.message + seen);
  }
  bad.disconnect();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log("error " + e.message);
    process.exit(1);
  },
);
