// A CAF application that embeds kura as a full member of a kura cluster,
// beside kura-node processes: it joins the ring through a seed, owns and
// replicates slots, serves the commands its peers forward to it (it links
// the library kura_cluster, which runs them as kura-node does), keeps an
// archive (L4) below its L3, and uses the same typed key/value handle as a
// lone embedded kura.
//
//   build/bin/kura-node --port=6401 --cluster-port=7401 --data-dir=d1 --kura.cluster.node-id=n1
//   build/bin/kura-embed-cluster-example app1 7410 127.0.0.1:7401 [data-dir] [serve-seconds]
//   redis-cli -p 6401 get greeting              # written by the application
//   build/bin/kura --port=7410 members          # n1 and app1
#include "actors/kura.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <iostream>
#include <thread>

using namespace kura::actors;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: kura-embed-cluster-example NODE-ID CLUSTER-PORT SEED-HOST:PORT "
                 "[DATA-DIR] [SERVE-SECONDS]\n";
    return 2;
  }
  embedded_options opts;
  opts.cluster.node_id = argv[1];
  opts.cluster.port = static_cast<uint16_t>(std::stoi(argv[2]));
  opts.cluster.seeds = {argv[3]};
  opts.data_dir = argc > 4 ? argv[4] : std::string("kura-embed-") + argv[1];
  int serve_s = argc > 5 ? std::stoi(argv[5]) : 0;
  opts.cluster.heartbeat_ms = 1000;
  opts.cluster.sync_ms = 5000;

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  prepare_cluster_config(cfg, opts.cluster.heartbeat_ms); // before the system exists
  caf::actor_system sys{cfg};
  auto db = spawn_kura(sys, opts);
  if (!db) {
    std::cerr << "cannot start kura: " << sys.render(db.error()) << std::endl;
    return 1;
  }
  int rc = 0;
  {
    blocking_client kv{sys, (*db)->handle()};
    // writes wait until the ring is joined (CLUSTERDOWN before)
    caf::error err;
    for (int i = 0; i < 100; ++i) {
      err = kv.set("greeting", "hello from " + opts.cluster.node_id);
      if (!err)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (err) {
      std::cerr << "cannot write: " << sys.render(err) << std::endl;
      rc = 1;
    }
    auto v = kv.get("greeting");
    std::cout << "greeting = " << (v && *v ? **v : std::string{"<missing>"}) << std::endl;
    auto t = kv.tier("greeting");
    std::cout << "greeting is " << (t && *t == "l3" ? "held here" : "held by other members")
              << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(serve_s));
  }
  (*db)->stop(); // leaves the ring and hands off
  return rc;
}
