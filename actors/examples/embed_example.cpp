// A CAF application that embeds kura: it spawns the kura actor graph in its
// own actor system, talks to it from an actor of its own through the typed
// handle (request/then), and from main through the blocking helper.
//   kura-embed-example [data-dir]      (default: ./kura-embed-data)
#include "actors/kura.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <iostream>

using namespace kura::actors;

namespace {

/// An application actor that counts visits in kura and reports the total.
caf::behavior visit_counter(caf::event_based_actor* self, kura_actor db) {
  return {
      [=](const std::string& page) -> caf::result<std::string> {
        auto rp = self->make_response_promise<std::string>();
        self->request(db, std::chrono::seconds(5), kv_get_atom::value, "visits:" + page)
            .then(
                [=](kv_reply& r) mutable {
                  auto n = r.found ? std::stoull(r.value) + 1 : 1;
                  self->request(db, std::chrono::seconds(5), kv_set_atom::value, "visits:" + page,
                                std::to_string(n), uint64_t{0})
                      .then(
                          [=](kv_reply&) mutable {
                            rp.deliver(page + " visited " + std::to_string(n) + "x");
                          },
                          [=](caf::error& e) mutable { rp.deliver(e); });
                },
                [=](caf::error& e) mutable { rp.deliver(e); });
        return rp;
      },
  };
}

} // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "kura-embed-data";
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto db = spawn_kura(sys, embedded_options{dir});
  if (!db) {
    std::cerr << "cannot start kura: " << sys.render(db.error()) << std::endl;
    return 1;
  }
  int rc = 0;
  {
    auto counter = sys.spawn(visit_counter, (*db)->handle());
    caf::scoped_actor self{sys};
    for (int i = 0; i < 3; ++i)
      self->request(counter, std::chrono::seconds(5), std::string{"home"})
          .receive([](std::string& s) { std::cout << s << std::endl; },
                   [&](caf::error& e) {
                     std::cerr << "error: " << sys.render(e) << std::endl;
                     rc = 1;
                   });
    blocking_client kv{sys, (*db)->handle()};
    if (auto err = kv.set("greeting", "hello from kura", 60000))
      rc = 1;
    auto v = kv.get("greeting");
    std::cout << "greeting = " << (v && *v ? **v : std::string{"<missing>"}) << std::endl;
    auto t = kv.tier("greeting");
    std::cout << "greeting lives in " << (t ? *t : std::string{"?"}) << std::endl;
    self->send_exit(counter, caf::exit_reason::user_shutdown);
  }
  (*db)->stop();
  return rc;
}
