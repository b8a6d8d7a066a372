// Which commands wait when the L3 write-behind is over its high-water mark
// (kura.l3.write-behind-high-water[-bytes]) or the write-ahead log cannot
// write: the back-pressure is about memory held for writes that L3 has not
// applied yet, so only commands that may write wait. Reads, PING, INFO and
// the like go on (a GET is never held up because another client is writing
// 64 MiB values). Within one connection order is kept: a read behind a
// waiting write waits with it (node/resp_server.cpp).
// Thread safety: pure function.
#pragma once

#include "node/command_registry.hpp"

namespace kura::node {

/// Whether the command `a` waits at the high-water mark: everything that may
/// write (flags write, denyoom or may_replicate: SET, DEL, EVAL, FLUSHALL
/// ...) and EXEC (which runs queued writes); not read-only commands, nor
/// commands that write nothing (PING, INFO, CLIENT ..., MULTI). An unknown
/// command does not wait either (it only gets an error).
/// `top_id` is reg.find(a[0]), looked up by the caller.
inline bool waits_at_high_water(const command_registry& reg, const command_args& a, int top_id) {
  int id = reg.resolve(a, top_id);
  if (id < 0)
    return false;
  const command_spec& s = reg.spec(id);
  if (s.flags & cmd_flag::readonly)
    return false;
  if (s.flags & (cmd_flag::write | cmd_flag::denyoom | cmd_flag::may_replicate))
    return true;
  const command_spec& top = s.parent >= 0 ? reg.spec(s.parent) : s;
  return top.name == "exec";
}

inline bool waits_at_high_water(const command_registry& reg, const command_args& a) {
  return waits_at_high_water(reg, a, a.empty() ? -1 : reg.find(a[0]));
}

} // namespace kura::node
