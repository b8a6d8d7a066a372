// cluster_poke: a hostile or careless peer for the multi-process tests. It
// connects to a kura-node's cluster port as a CAF node and sends what a real
// coordinator would not:
//   cluster_poke PORT stranger           gossip without a handshake + an unexpected message
//   cluster_poke PORT handshake SECRET   exit 0 when the node accepts SECRET, 3 when it refuses
//   cluster_poke PORT truncated SECRET   handshake, then truncated msgpack and garbage as gossip
//   cluster_poke PORT badframe SECRET    handshake, then peer batches (gbatch_atom): one cut
//                                        short, one with a wrong length, then plain gossip
//                                        (which the node must no longer trust)
//   cluster_poke PORT exec-early SECRET  forwards PING before any handshake (as a member that
//                                        resumed after its link dropped), then proves SECRET
//                                        when the node asks; prints the reply, exit 0 on +PONG
//   cluster_poke PORT double-hello SECRET two handshakes at once (hello, hello, then both
//                                        auths, the first hello's first: a re-dial while one is
//                                        in flight); exit 0 when the node accepts both
// Exit codes: 0 done (as described), 2 cannot reach the node, 3 refused.
#include "actors/cluster.hpp"
#include "gossip/messages.hpp"
#include "tiers/envelope.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <future>
#include <iostream>
#include <random>
#include <thread>
#include <unistd.h>

using namespace kura;
using namespace kura::actors;

namespace {

[[noreturn]] void finish(int rc) {
  std::cout.flush();
  std::cerr.flush();
  ::_exit(rc); // CAF-0.17.md §4.5: do not wait for the middleman on exit
}

std::string nonce() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i)
    s += hex[rd() & 15];
  return s;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: cluster_poke PORT stranger|handshake SECRET|truncated SECRET|exec-early "
                 "SECRET|double-hello SECRET\n";
    return 1;
  }
  auto port = static_cast<uint16_t>(std::stoi(argv[1]));
  std::string mode = argv[2];
  std::string secret = argc > 3 ? argv[3] : "";
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto timeout = std::chrono::seconds(5);
  caf::actor ops, coord;
  self->request(sys.middleman().actor_handle(), timeout, caf::connect_atom::value,
                std::string("127.0.0.1"), port)
      .receive([&](const caf::node_id&, caf::strong_actor_ptr& p,
                   const std::set<std::string>&) { ops = caf::actor_cast<caf::actor>(p); },
               [&](caf::error& e) { std::cerr << "connect: " << sys.render(e) << "\n"; });
  if (!ops)
    finish(2);
  self->request(ops, timeout, coord_atom::value)
      .receive([&](caf::actor c) { coord = c; },
               [&](caf::error& e) { std::cerr << "coord: " << sys.render(e) << "\n"; });
  if (!coord)
    finish(2);
  if (mode == "stranger") {
    self->send(coord, gossip_atom::value, gossip_id_of("stranger"), std::string("\x93\x01\x64"));
    self->send(coord, std::string("hello?"), 42);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    finish(0);
  }
  std::string me = "poke-" + std::to_string(::getpid());
  if (mode == "exec-early") {
    // An actor of ours sends the command (the node runs its handshake with
    // the sender) and answers that handshake as a coordinator does.
    auto answer = std::make_shared<std::promise<std::string>>();
    auto got = answer->get_future();
    // The lambda takes an argument on purpose: for a lambda with none, CAF
    // 0.17's init_fun_factory dereferences a null shared_ptr<std::tuple<>>
    // (UBSan: "reference binding to null pointer", CI's sanitizer run, session 17).
    auto handshaker = [=](caf::event_based_actor* a, int) -> caf::behavior {
      auto bytes =
          seal(static_cast<uint32_t>(cluster_msg_type::exec), exec_request{{"PING"}, 0, false});
      a->request(coord, std::chrono::seconds(20), exec_atom::value, gossip_id_of(me), bytes)
          .then([=](std::string& r) { answer->set_value(r); },
                [=](caf::error& e) { answer->set_value("error: " + a->system().render(e)); });
      return {
          [=](hello_atom, std::string& id_a, std::string&, std::string& nonce_a)
              -> caf::result<std::string, std::string, std::string, std::string> {
            auto nb = nonce();
            return {me, std::string("127.0.0.1:1"), nb,
                    cluster_mac(secret, "kura-b|" + nonce_a + "|" + nb + "|" + me + "|" + id_a)};
          },
          [=](auth_atom, std::string&) { return caf::ok_atom::value; },
      };
    };
    sys.spawn(handshaker, 0);
    if (got.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
      finish(2);
    auto r = got.get();
    std::cout << r << std::endl;
    finish(r == "+PONG\r\n" ? 0 : 3);
  }
  if (mode == "double-hello") {
    // Both hellos are answered before either auth is sent.
    std::string na[2] = {nonce(), nonce()}, nb[2], id_b;
    for (int i = 0; i < 2; ++i) {
      bool ok = false;
      self->request(coord, timeout, hello_atom::value, me, std::string("127.0.0.1:1"), na[i])
          .receive(
              [&](std::string& id, std::string&, std::string& n, std::string&) {
                id_b = id;
                nb[i] = n;
                ok = true;
              },
              [&](caf::error& e) { std::cerr << "hello " << i << ": " << sys.render(e) << "\n"; });
      if (!ok)
        finish(3);
    }
    int accepted = 0;
    for (int i = 0; i < 2; ++i) {
      auto mac = cluster_mac(secret, "kura-a|" + nb[i] + "|" + na[i] + "|" + me + "|" + id_b);
      self->request(coord, timeout, auth_atom::value, mac)
          .receive(
              [&](caf::ok_atom) { ++accepted; },
              [&](caf::error& e) { std::cerr << "auth " << i << ": " << sys.render(e) << "\n"; });
    }
    std::cout << "accepted " << accepted << " of 2" << std::endl;
    finish(accepted == 2 ? 0 : 3);
  }
  auto na = nonce();
  std::string nb, id_b;
  bool refused = false;
  self->request(coord, timeout, hello_atom::value, me, std::string("127.0.0.1:1"), na)
      .receive(
          [&](std::string& id, std::string&, std::string& n, std::string&) {
            id_b = id;
            nb = n;
          },
          [&](caf::error& e) {
            std::cerr << "hello: " << sys.render(e) << "\n";
            refused = true;
          });
  if (refused)
    finish(3);
  auto mac = cluster_mac(secret, "kura-a|" + nb + "|" + na + "|" + me + "|" + id_b);
  self->request(coord, timeout, auth_atom::value, mac)
      .receive([&](caf::ok_atom) {},
               [&](caf::error& e) {
                 std::cerr << "auth: " << sys.render(e) << "\n";
                 refused = true;
               });
  if (refused)
    finish(3);
  if (mode == "handshake")
    finish(0);
  // truncated: a valid envelope cut short, then bytes that are no envelope at all
  gossip::ping_msg ping;
  ping.seq = 7;
  auto good = gossip::encode(ping);
  if (mode == "badframe") {
    std::string frames;
    append_frame(frames, good);
    append_frame(frames, good);
    self->send(coord, gbatch_atom::value, gossip_id_of(me), frames.substr(0, frames.size() - 3));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto bad = frames;
    bad[1] = static_cast<char>(0x7f); // the first frame's length: past the end
    self->send(coord, gbatch_atom::value, gossip_id_of(me), bad);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    self->send(coord, gossip_atom::value, gossip_id_of(me), good);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    finish(0);
  }
  self->send(coord, gossip_atom::value, gossip_id_of(me), good.substr(0, good.size() / 2));
  self->send(coord, gossip_atom::value, gossip_id_of(me), std::string("\xff\xfe garbage"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  finish(0);
}
