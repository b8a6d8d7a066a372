#include "node/commands.hpp"

#include "node/command_util.hpp"
#include "node/security.hpp"

namespace kura::node {

// -- families ------------------------------------------------------------------
// One file per family registers its commands; adding a family is one new
// node/cmd_*.cpp (CMake picks it up) and one line in each list below.

void register_server_commands(command_registry& r);   // node/cmd_server.cpp
void register_string_commands(command_registry& r);   // node/cmd_strings.cpp
void register_keyspace_commands(command_registry& r); // node/cmd_keyspace.cpp
void register_kura_commands(command_registry& r);     // node/cmd_kura.cpp
void register_acl_commands(command_registry& r);      // node/cmd_acl.cpp

command_table::command_table(keyspace& ks, node_facts& facts) : ks_(ks), facts_(facts) {
  register_server_commands(reg_);
  register_string_commands(reg_);
  register_keyspace_commands(reg_);
  register_kura_commands(reg_);
  register_acl_commands(reg_);
  // after every family: the ACL catalog mirrors the registry's ids
  sec_ = std::make_unique<security_state>(reg_);
  state_.security = sec_.get();
}

command_table::~command_table() = default;

std::string command_table::configure_security(const security_config& cfg) {
  return sec_->configure(cfg);
}

void command_table::reset_stats() {
  reg_.reset_stats();
  state_.reset_stats();
}

// -- planning ----------------------------------------------------------------

void command_table::plan(const command_args& a, fetch_plan& out) {
  out.clear();
  if (!ks_.has_l3() || a.empty())
    return;
  int id = reg_.resolve(a);
  if (id < 0)
    return;
  const command_spec& sp = reg_.spec(id);
  if (!arity_ok(sp.arity, a.size()))
    return; // runs at once and answers with the arity error
  if (sp.planner)
    return sp.planner(a, sp, state_, ks_, out);
  if (sp.first_key == 0 || sp.blind)
    return;
  plan_key_lookup(a, sp, ks_, out);
}

// -- execution -----------------------------------------------------------------

void command_table::execute(const command_args& a, session& s, out_buffer& out,
                            const listing* lst) {
  if (a.empty())
    return;
  int id = reg_.find(a[0]);
  if (id < 0) {
    std::string m = "ERR unknown command '";
    m.append(a[0].substr(0, 128));
    m += "', with args beginning with: ";
    for (size_t i = 1; i < a.size() && m.size() < 1024; ++i) {
      m += "'";
      m.append(a[i].substr(0, 128));
      m += "' ";
    }
    for (auto& ch : m)
      if (ch == '\r' || ch == '\n')
        ch = ' ';
    put_error(out, m);
    return;
  }
  ++state_.total_commands;
  const command_spec* sp = &reg_.spec(id);
  if (!sp->subcommands.empty() && a.size() >= 2) {
    int sub = reg_.find_sub(id, a[1]);
    if (sub < 0) {
      auto& st = reg_.stats()[static_cast<size_t>(id)];
      ++st.calls;
      ++st.errors;
      return unknown_subcommand(out, sp->name, a[1]);
    }
    id = sub;
    sp = &reg_.spec(id);
  }
  auto& st = reg_.stats()[static_cast<size_t>(id)];
  ++st.calls;
  if (!arity_ok(sp->arity, a.size()) || !sp->handler) {
    ++st.errors;
    return wrong_args(out, sp->name);
  }
  size_t before = out.size();
  if (!permit(*sec_, reg_, id, a, s, out, ks_.clock().now_ms())) {
    ++st.errors;
    return;
  }
  command_context c{ks_, facts_, s, out, lst, state_, reg_};
  auto t0 = ks_.clock().mono_ns();
  sp->handler(a, c);
  st.latency.record(ks_.clock().mono_ns() - t0);
  bool failed = out.size() > before && out[before] == '-';
  if (failed)
    ++st.errors;
  if (sec_->audit && audited(reg_, id)) {
    std::string_view result = "ok";
    if (failed) {
      std::string_view o(out.data() + before + 1, out.size() - before - 1);
      result = o.substr(0, o.find('\r'));
    }
    sec_->audit_command("command", s, a, sp->parent >= 0 ? 2 : 1, result, ks_.clock().now_ms());
  }
}

} // namespace kura::node
