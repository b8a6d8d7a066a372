// KURA.ERASE KEY k [k ...] | PREFIX p | SUBJECT id | STATUS id (node/erase_book.hpp).
// The job runs in the background (memory, L3, L4, each rewritten so that the
// erased bytes leave the files); the reply is its receipt as it stands, and
// STATUS id answers it later (until and after the job finishes, across
// restarts).
#include "node/command_registry.hpp"
#include "node/erase_book.hpp"

namespace kura::node {

namespace {

void put_receipt(out_buffer& out, const erase_receipt& r, int resp) {
  put_map_header(out, 15, resp);
  auto s = [&](const char* n, const std::string& v) {
    put_bulk(out, n);
    put_bulk(out, v);
  };
  auto u = [&](const char* n, uint64_t v) {
    put_bulk(out, n);
    put_int(out, static_cast<int64_t>(v));
  };
  s("id", r.id);
  s("state", r.state);
  s("mode", r.mode);
  s("node", r.node);
  s("digest", r.digest);
  s("error", r.error);
  u("requested", r.requested);
  u("matched", r.matched);
  u("memory", r.memory);
  u("l3", r.l3);
  u("l4", r.l4);
  u("l4-segments", r.l4_segments);
  u("started-ms", r.started_ms);
  u("finished-ms", r.finished_ms);
  // one map per cluster member (docs/security.md, "Erasure on a cluster")
  put_bulk(out, "nodes");
  put_array_header(out, r.nodes.size());
  for (auto& n : r.nodes) {
    put_map_header(out, 7, resp);
    s("node", n.node);
    s("state", n.state);
    u("l3", n.l3);
    u("l4", n.l4);
    u("hints", n.hints);
    u("near", n.near);
    u("l4-segments", n.l4_segments);
  }
}

bool have_book(command_context& c) {
  if (c.facts.erase)
    return true;
  put_error(c.out, "ERR KURA.ERASE is not available on this node");
  return false;
}

void cmd_erase_key(const command_args& a, command_context& c) {
  if (!have_book(c))
    return;
  std::vector<std::string> keys;
  for (size_t i = 2; i < a.size(); ++i)
    keys.emplace_back(a[i]);
  put_receipt(c.out, c.facts.erase->start(erase_kind::keys, std::move(keys)), c.sess.resp);
}

void cmd_erase_prefix(const command_args& a, command_context& c) {
  if (a[2].empty()) {
    put_error(c.out, "ERR an empty prefix matches every key: use FLUSHALL to erase everything");
    return;
  }
  if (!have_book(c))
    return;
  put_receipt(c.out, c.facts.erase->start(erase_kind::prefix, {std::string{a[2]}}), c.sess.resp);
}

void cmd_erase_subject(const command_args& a, command_context& c) {
  if (a[2].empty()) {
    put_error(c.out, "ERR an empty subject id");
    return;
  }
  if (!have_book(c))
    return;
  put_receipt(c.out, c.facts.erase->start(erase_kind::subject, {std::string{a[2]}}), c.sess.resp);
}

void cmd_erase_status(const command_args& a, command_context& c) {
  if (!have_book(c))
    return;
  auto r = c.facts.erase->get(std::string{a[2]});
  if (!r) {
    put_error(c.out, "ERR no erasure with id '" + std::string{a[2]} + "'");
    return;
  }
  put_receipt(c.out, *r, c.sess.resp);
}

} // namespace

void register_erase_commands(command_registry& r) {
  r.add("kura.erase", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for erasure commands (GDPR)", "0.1.0", "generic", "Depends on subcommand.");
  r.add_sub("kura.erase", "key", -3, "write", cmd_erase_key)
      .keys(2, -1, 1)
      .key_spec(2, -1, 1, 0, "RM delete")
      .acl("@keyspace @write @slow @dangerous")
      .doc("Erase keys from every tier, archive and files included; returns a receipt", "0.1.0",
           "generic", "O(N) in the size of L3 and L4");
  r.add_sub("kura.erase", "prefix", 3, "write admin", cmd_erase_prefix)
      .acl("@keyspace @write @slow @dangerous @admin")
      .doc("Erase every key with a prefix from every tier; returns a receipt", "0.1.0", "generic",
           "O(N) in the size of L3 and L4");
  r.add_sub("kura.erase", "subject", 3, "write admin", cmd_erase_subject)
      .acl("@keyspace @write @slow @dangerous @admin")
      .doc("Erase every key of a data subject (patterns and KURA.SUBJECT tags) from every tier; "
           "returns a receipt",
           "0.1.0", "generic", "O(N) in the size of L3 and L4");
  r.add_sub("kura.erase", "status", 3, "readonly", cmd_erase_status)
      .acl("@slow")
      .doc("The receipt of an erasure", "0.1.0", "generic", "O(1)");
}

} // namespace kura::node
