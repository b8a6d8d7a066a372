// `kura rotate-key [--json]` (node/rotate_key.hpp): starts a key rotation on
// the node, draws a progress bar on stderr (L3 records and L4 bytes
// re-sealed) until both are done, then prints a one-line summary, or with
// --json only a JSON object on stdout.
#include "node/json_writer.hpp"
#include "node/ops.hpp"
#include "node/rotate_key.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include <unistd.h>

namespace kura::node {

namespace {

using namespace actors;

/// Decodes a rotate_report or prints the node's error; false on error.
bool decode_report(std::string_view bytes, rotate_report& r, bool json) {
  auto d = decode_message<rotate_report>(msg_rotate_report, bytes);
  if (d) {
    r = std::move(*d);
    return true;
  }
  auto e = decode_message<kv_reply>(msg_type::kv_reply, bytes);
  std::string why = e ? e->error : "bad answer from the node: " + d.err().message;
  if (json)
    std::cout << json_writer{}.begin_object().key("error").str(why).end_object().str() << "\n";
  std::cerr << "kura: " << why << "\n";
  return false;
}

double fraction(const rotate_report& r) {
  double total = static_cast<double>(r.l3_total) + static_cast<double>(r.l4_bytes_total);
  double done = static_cast<double>(std::min(r.l3_done, r.l3_total)) +
                static_cast<double>(std::min(r.l4_bytes_done, r.l4_bytes_total));
  return total <= 0 ? (r.running ? 0.0 : 1.0) : done / total;
}

void progress_bar(const rotate_report& r) {
  const int width = 30;
  double f = fraction(r);
  int fill = static_cast<int>(f * width + 0.5);
  std::string bar(static_cast<size_t>(fill), '#');
  bar.append(static_cast<size_t>(width - fill), '-');
  std::fprintf(
      stderr, "\rrotate-key [%s] %3d%%  L3 %llu/%llu records  L4 %u/%u segments", bar.c_str(),
      static_cast<int>(f * 100 + 0.5), static_cast<unsigned long long>(r.l3_done),
      static_cast<unsigned long long>(r.l3_total), r.l4_segments_done, r.l4_segments_total);
  std::fflush(stderr);
}

void print_summary(const rotate_report& r, bool json) {
  if (json) {
    json_writer j;
    j.begin_object()
        .key("ok")
        .boolean(r.ok)
        .key("active_key")
        .num(r.active_key)
        .key("l3_records")
        .num(r.l3_done)
        .key("l3_resealed")
        .num(r.l3_resealed)
        .key("l4_segments_resealed")
        .num(r.l4_segments_done)
        .key("l4_bytes_resealed")
        .num(r.l4_bytes_done);
    if (!r.ok)
      j.key("error").str(r.error);
    std::cout << j.end_object().str() << "\n";
    return;
  }
  if (!r.ok) {
    std::cout << "rotate-key failed: " << r.error << "\n";
    return;
  }
  std::cout << "rotate-key done: new data sealed with key " << r.active_key << "; L3 "
            << r.l3_resealed << " of " << r.l3_done << " records re-sealed";
  if (r.l4)
    std::cout << ", L4 " << r.l4_segments_done << " segments (" << r.l4_bytes_done
              << " bytes) re-sealed";
  std::cout << "\n";
}

} // namespace

int run_rotate_key(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                   bool json, caf::timespan timeout) {
  std::string why;
  auto unreachable = [&] {
    std::cerr << "\nkura: lost the kura-node during the key rotation (" << why
              << "); run kura rotate-key again to finish it\n";
    return 2;
  };
  auto a = ask_ops(sys, self, ops, rotate_ops::rotate_key, timeout, why);
  if (!a)
    return unreachable();
  rotate_report r;
  if (!decode_report(*a, r, json))
    return 1;
  bool bar = !json || ::isatty(2);
  while (r.running) {
    if (bar)
      progress_bar(r);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    a = ask_ops(sys, self, ops, rotate_ops::rotate_status, timeout, why);
    if (!a)
      return unreachable();
    if (!decode_report(*a, r, json))
      return 1;
  }
  if (bar) {
    progress_bar(r);
    std::cerr << "\n";
  }
  print_summary(r, json);
  return r.ok ? 0 : 1;
}

} // namespace kura::node
