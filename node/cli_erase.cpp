// `kura erase key K [K...] | prefix P | subject ID | status ID [--json]` (node/erase.hpp):
// starts an erasure through the ops port, shows its progress on stderr (the
// receipt's state, polled) until it ends, then prints a summary, or with
// --json only the receipt as a JSON object on stdout.
#include "node/erase.hpp"
#include "node/ops.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <iostream>
#include <thread>
#include <unistd.h>

namespace kura::node {

namespace {

using namespace actors;

/// One request to the ops actor; the receipt, or nullopt (and `why`).
std::optional<erase_receipt> ask(caf::actor_system& sys, caf::scoped_actor& self,
                                 const caf::actor& ops, const kv_request& req,
                                 caf::timespan timeout, std::string& why, bool& unreachable) {
  std::optional<std::string> answer;
  auto& cred = cli_credentials();
  self->request(ops, timeout, ops_request_atom::value, cred.user, cred.password,
                encode_message(msg_type::kv_request, req))
      .receive([&](std::string& bytes) { answer = std::move(bytes); },
               [&](caf::error& err) { why = sys.render(err); });
  unreachable = !answer;
  if (!answer)
    return std::nullopt;
  auto r = decode_message<kv_reply>(msg_type::kv_reply, *answer);
  if (!r) {
    why = "bad answer from the node: " + r.err().message;
    return std::nullopt;
  }
  if (!r->error.empty()) {
    why = r->error;
    return std::nullopt;
  }
  auto rec = erase_receipt::from_json(r->value);
  if (!rec)
    why = "bad receipt from the node";
  return rec;
}

/// Steps of a job in order, for the progress bar.
int step_of(const std::string& state) {
  if (state == "queued")
    return 0;
  if (state == "l3")
    return 1;
  if (state == "memory")
    return 2;
  if (state == "l4")
    return 3;
  return 4;
}

void progress(const erase_receipt& r) {
  const int width = 20;
  int fill = step_of(r.state) * width / 4;
  std::string bar(static_cast<size_t>(fill), '#');
  bar.append(static_cast<size_t>(width - fill), '-');
  std::fprintf(stderr, "\rerase %s [%s] %-7s matched %llu  L3 %llu  L4 %llu  segments %llu ",
               r.id.c_str(), bar.c_str(), r.state.c_str(),
               static_cast<unsigned long long>(r.matched), static_cast<unsigned long long>(r.l3),
               static_cast<unsigned long long>(r.l4),
               static_cast<unsigned long long>(r.l4_segments));
  std::fflush(stderr);
}

} // namespace

int run_erase_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                      const std::vector<std::string>& args, bool json, caf::timespan timeout) {
  auto usage = [] {
    std::cerr << "usage: kura erase key K [K...] | prefix P | subject ID | status ID [--json]\n";
    return 1;
  };
  if (args.size() < 3)
    return usage();
  kv_request req;
  const std::string& what = args[1];
  if (what == "key") {
    req.op = erase_ops::erase_keys;
    req.value = pack_keys(std::vector<std::string>(args.begin() + 2, args.end()));
  } else if (what == "prefix" && args.size() == 3) {
    req.op = erase_ops::erase_prefix, req.key = args[2];
  } else if (what == "subject" && args.size() == 3) {
    req.op = erase_ops::erase_subject, req.key = args[2];
  } else if (what == "status" && args.size() == 3) {
    req.op = erase_ops::erase_status, req.key = args[2];
  } else {
    return usage();
  }
  std::string why;
  bool lost = false;
  auto r = ask(sys, self, ops, req, timeout, why, lost);
  bool bar = !json || ::isatty(2);
  while (r && r->finished_ms == 0) {
    if (bar)
      progress(*r);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kv_request st;
    st.op = erase_ops::erase_status, st.key = r->id;
    r = ask(sys, self, ops, st, timeout, why, lost);
  }
  if (!r) {
    if (bar)
      std::cerr << "\n";
    std::cerr << "kura: " << (lost ? "lost the kura-node (" + why + ")" : why) << "\n";
    return lost ? 2 : 1;
  }
  if (bar) {
    progress(*r);
    std::cerr << "\n";
  }
  if (json) {
    std::cout << r->to_json() << "\n";
  } else if (r->state == "done") {
    std::cout << "erase " << r->id << " done: " << r->matched << " key(s) erased (memory "
              << r->memory << ", L3 " << r->l3 << ", L4 " << r->l4 << ", " << r->l4_segments
              << " archive segment(s) rewritten) in " << (r->finished_ms - r->started_ms)
              << " ms\n";
  } else {
    std::cout << "erase " << r->id << " failed: " << r->error << "\n";
  }
  return r->state == "done" ? 0 : 1;
}

} // namespace kura::node
