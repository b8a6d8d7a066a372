// KURA.SUBJECT key [id] (node/subjects.hpp): tags a key with a data subject,
// or lists the subjects a key belongs to (the configured patterns' and the
// explicit tags'). KURA.ERASE SUBJECT id erases them (node/cmd_erase.cpp).
#include "node/command_registry.hpp"
#include "node/subjects.hpp"

namespace kura::node {

namespace {

void cmd_subject(const command_args& a, command_context& c) {
  if (a.size() > 3) {
    put_error(c.out, "ERR wrong number of arguments for 'kura.subject' command");
    return;
  }
  if (!c.facts.subjects) {
    put_error(c.out, "ERR KURA.SUBJECT is not available on this node (not built for cluster mode "
                     "yet, see docs/security.md)");
    return;
  }
  if (a.size() == 3) {
    if (a[2].empty()) {
      put_error(c.out, "ERR an empty subject id");
      return;
    }
    std::string error;
    int added = c.facts.subjects->tag(a[1], a[2], error);
    if (!error.empty()) {
      put_error(c.out, "ERR the subject tag was not stored: " + error);
      return;
    }
    put_int(c.out, added);
    return;
  }
  std::vector<std::string> ids;
  if (c.facts.subject_rules)
    ids = c.facts.subject_rules->ids_of(a[1]);
  for (auto& id : c.facts.subjects->ids_of(a[1]))
    if (std::find(ids.begin(), ids.end(), id) == ids.end())
      ids.push_back(id);
  put_array_header(c.out, ids.size());
  for (auto& id : ids)
    put_bulk(c.out, id);
}

} // namespace

void register_subject_commands(command_registry& r) {
  r.add("kura.subject", -2, "write", cmd_subject)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RW update")
      .acl("@keyspace @write @slow")
      .doc("Tag a key with a data subject (KURA.ERASE SUBJECT erases them), or list a key's "
           "subjects",
           "0.1.0", "generic", "O(1)");
}

} // namespace kura::node
