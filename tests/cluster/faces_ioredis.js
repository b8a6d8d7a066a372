// A scripted ioredis Cluster session against a kura cluster.
//   NODE_PATH=<dir>/node_modules node faces_ioredis.js RESP_PORT,RESP_PORT,...
// Run by tests/cluster/faces_test.cpp after `npm install ioredis@5` into the
// build tree. ioredis reads CLUSTER SLOTS, checks CLUSTER INFO's
// cluster_state, then sends every key to its slot's primary (or, with
// scaleReads: "slave", reads from replicas after READONLY). Prints "ok" on
// success; any failure exits 1 with the reason.
"use strict";
const assert = require("assert");
const Redis = require("ioredis");

async function main() {
  const ports = process.argv[2].split(",").map(Number);
  const nodes = ports.map((port) => ({ host: "127.0.0.1", port }));
  const cluster = new Redis.Cluster(nodes, { enableReadyCheck: true });
  const info = await cluster.cluster("INFO");
  assert.match(info, /cluster_state:ok/);

  for (let i = 0; i < 300; i++) assert.strictEqual(await cluster.set(`io:${i}`, `v${i}`), "OK");
  for (let i = 0; i < 300; i++) assert.strictEqual(await cluster.get(`io:${i}`), `v${i}`);
  assert.deepStrictEqual(
    cluster.nodes("all").map((n) => n.options.port).sort(),
    [...ports].sort(),
  );

  // hash tags: one slot, so MSET/MGET and a pipeline go to one node
  assert.strictEqual(await cluster.mset("{cart:9}:a", "1", "{cart:9}:b", "2"), "OK");
  assert.deepStrictEqual(await cluster.mget("{cart:9}:a", "{cart:9}:b", "{cart:9}:c"), [
    "1",
    "2",
    null,
  ]);
  const piped = await cluster.pipeline().incr("{cart:9}:a").get("{cart:9}:b").exec();
  assert.deepStrictEqual(piped, [
    [null, 2],
    [null, "2"],
  ]);

  // delete and expiry
  assert.strictEqual(await cluster.del("io:0"), 1);
  assert.strictEqual(await cluster.get("io:0"), null);
  assert.strictEqual(await cluster.set("io:tmp", "x", "PX", 300), "OK");
  const deadline = Date.now() + 15000;
  while ((await cluster.get("io:tmp")) !== null) {
    assert.ok(Date.now() < deadline, "io:tmp did not expire");
    await new Promise((r) => setTimeout(r, 100));
  }

  // reads from replicas (READONLY connections)
  const replicas = new Redis.Cluster(nodes, { scaleReads: "slave" });
  for (let i = 1; i < 100; i++) assert.strictEqual(await replicas.get(`io:${i}`), `v${i}`);
  await replicas.quit();
  await cluster.quit();
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
