// KURA.ERASE's coordinator (node/erase.hpp).
#include "node/erase.hpp"

#include "actors/archive_actors.hpp"
#include "actors/erase_tiers.hpp"
#include "tiers/clock.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <deque>
#include <iostream>
#include <set>

namespace kura::node {

// -- the coordinator ------------------------------------------------------------------------

namespace {

using namespace actors;

struct erase_job {
  erase_receipt r;
  uint8_t mode = 0;
  std::vector<std::string> args;
  std::string subject; ///< mode subject: the id (args are then its globs and keys)
  std::set<std::string> matched;
};

struct coord_state {
  std::shared_ptr<erase_book> book;
  erase_targets t;
  std::deque<erase_job> queue;
  bool busy = false;
  static inline const char* name = "kura.erase";
};

using coord_self = caf::stateful_actor<coord_state>*;
using poll_atom = caf::atom_constant<caf::atom("erase_poll")>;

constexpr auto step_timeout = std::chrono::minutes(30);

void run_next(coord_self self);
void memory_step(coord_self self);

/// erase_mode::subject's args for subject `id` (actors/erase_tiers.hpp).
std::vector<std::string> subject_args(const erase_targets& t, const std::string& id) {
  std::vector<std::string> out;
  if (id.empty())
    return out;
  if (t.patterns)
    for (auto& g : t.patterns->globs_for(id))
      out.push_back("g" + g);
  if (t.subjects)
    for (auto& k : t.subjects->keys_of(id))
      out.push_back("k" + k);
  return out;
}

void finish(coord_self self, erase_job& j, std::string error) {
  auto& st = self->state;
  if (st.t.subjects) { // erased keys (and an erased subject) lose their tags
    auto why = st.t.subjects->forget(error.empty() ? j.subject : std::string{},
                                     std::vector<std::string>(j.matched.begin(), j.matched.end()));
    if (error.empty() && !why.empty())
      error = "subject tags: " + why;
  }
  j.r.matched = j.matched.size();
  j.r.finished_ms = real_clock::instance().now_ms();
  j.r.state = error.empty() ? "done" : "failed";
  j.r.error = std::move(error);
  st.book->put(j.r);
  if (st.t.resp)
    self->send(st.t.resp, erase_audit_atom::value, j.r.to_json());
  std::cerr << "kura-node: erase " << j.r.id << " " << j.r.state << ": " << j.r.matched
            << " key(s), memory " << j.r.memory << ", L3 " << j.r.l3 << ", L4 " << j.r.l4
            << (j.r.error.empty() ? "" : " (" + j.r.error + ")") << std::endl;
  st.queue.pop_front();
  st.busy = false;
  run_next(self);
}

void stage(coord_self self, const char* state) {
  auto& j = self->state.queue.front();
  j.r.state = state;
  self->state.book->put(j.r);
}

void l4_poll(coord_self self) {
  auto& st = self->state;
  self->request(st.t.compactor, std::chrono::seconds(30), compact_status_atom::value)
      .then(
          [self](compaction_report& c) {
            auto& j = self->state.queue.front();
            if (c.trigger == "erase" && c.running) {
              j.r.l4_segments = c.segments_done;
              self->state.book->put(j.r);
              self->delayed_send(self, std::chrono::milliseconds(50), poll_atom::value);
              return;
            }
            j.r.l4_segments = c.segments_done;
            finish(self, j, c.ok ? std::string{} : "L4: " + c.error);
          },
          [self](caf::error& err) {
            finish(self, self->state.queue.front(),
                   "the compactor did not answer: " + self->system().render(err));
          });
}

void l4_step(coord_self self) {
  auto& st = self->state;
  auto& j = st.queue.front();
  if (!st.t.compactor) {
    finish(self, j, {});
    return;
  }
  stage(self, "l4");
  std::vector<std::string> keys(j.matched.begin(), j.matched.end());
  self->request(st.t.compactor, std::chrono::seconds(60), l4_erase_atom::value, j.mode, j.args,
                keys, j.r.l4 > 0)
      .then(
          [self](compaction_report& c) {
            auto& j = self->state.queue.front();
            if (!c.ok) {
              finish(self, j, "L4: " + c.error);
              return;
            }
            j.r.l4_segments = c.segments_done;
            if (!c.running) {
              finish(self, j, {});
              return;
            }
            l4_poll(self);
          },
          [self](caf::error& err) {
            finish(self, self->state.queue.front(),
                   "the compactor did not answer: " + self->system().render(err));
          });
}

void l3_finish_step(coord_self self) {
  auto& st = self->state;
  auto& j = st.queue.front();
  std::vector<std::string> keys(j.matched.begin(), j.matched.end());
  if (j.mode == erase_mode::keys)
    keys.insert(keys.end(), j.args.begin(), j.args.end());
  self->request(st.t.l3, step_timeout, l3_erase_fin_atom::value, keys)
      .then(
          [self](std::string& error) {
            if (!error.empty()) {
              finish(self, self->state.queue.front(), error);
              return;
            }
            l4_step(self);
          },
          [self](caf::error& err) {
            finish(self, self->state.queue.front(),
                   "L3 did not answer: " + self->system().render(err));
          });
}

/// Memory, after L3 and L4 (a key resident in memory may be written back
/// to L3 meanwhile: the final L3 pass removes it again).
void memory_step(coord_self self) {
  auto& st = self->state;
  auto& j = st.queue.front();
  stage(self, "memory");
  self->request(st.t.store, step_timeout, mem_erase_atom::value, j.mode, j.args)
      .then(
          [self](std::vector<std::string>& erased) {
            auto& j = self->state.queue.front();
            j.r.memory += erased.size();
            j.matched.insert(erased.begin(), erased.end());
            if (!self->state.t.l3) {
              finish(self, j, {});
              return;
            }
            l3_finish_step(self);
          },
          [self](caf::error& err) {
            finish(self, self->state.queue.front(),
                   "memory did not answer: " + self->system().render(err));
          });
}

void l3_step(coord_self self) {
  auto& st = self->state;
  auto& j = st.queue.front();
  if (!st.t.l3) {
    memory_step(self);
    return;
  }
  stage(self, "l3");
  self->request(st.t.l3, step_timeout, l3_erase_atom::value, j.mode, j.args)
      .then(
          [self](uint64_t n3, uint64_t n4, std::vector<std::string>& keys, std::string& error) {
            auto& j = self->state.queue.front();
            j.r.l3 += n3;
            j.r.l4 += n4;
            j.matched.insert(keys.begin(), keys.end());
            if (!error.empty()) {
              finish(self, j, error);
              return;
            }
            memory_step(self);
          },
          [self](caf::error& err) {
            finish(self, self->state.queue.front(),
                   "L3 did not answer: " + self->system().render(err));
          });
}

void run_next(coord_self self) {
  auto& st = self->state;
  if (st.busy || st.queue.empty())
    return;
  st.busy = true;
  l3_step(self);
}

caf::behavior erase_coordinator(coord_self self, std::shared_ptr<erase_book> book,
                                erase_targets t) {
  self->state.book = std::move(book);
  self->state.t = std::move(t);
  self->set_default_handler(caf::drop);
  return {
      [=](const std::string& id, uint8_t mode, std::vector<std::string>& args) {
        auto r = self->state.book->get(id);
        if (!r)
          return;
        erase_job j;
        j.r = *r;
        j.mode = mode;
        j.args = std::move(args);
        if (mode == erase_mode::subject) // its globs and tagged keys, as they are now
          j.args = subject_args(self->state.t, j.subject = j.args.empty() ? "" : j.args[0]);
        self->state.queue.push_back(std::move(j));
        run_next(self);
      },
      [=](poll_atom) { l4_poll(self); },
  };
}

} // namespace

caf::actor spawn_erase_coordinator(caf::actor_system& sys, std::shared_ptr<erase_book> book,
                                   erase_targets t) {
  auto a = sys.spawn(erase_coordinator, book, std::move(t));
  book->set_dispatcher([a](const std::string& id, uint8_t mode, std::vector<std::string> args) {
    caf::anon_send(a, id, mode, std::move(args));
  });
  return a;
}

std::string pack_keys(const std::vector<std::string>& keys) {
  std::string out;
  for (auto& k : keys) {
    auto n = static_cast<uint32_t>(k.size());
    for (int i = 0; i < 4; ++i)
      out += static_cast<char>(n >> (8 * i));
    out += k;
  }
  return out;
}

bool unpack_keys(std::string_view bytes, std::vector<std::string>& keys) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (bytes.size() - i < 4)
      return false;
    uint32_t n = 0;
    for (int b = 3; b >= 0; --b)
      n = (n << 8) | static_cast<uint8_t>(bytes[i + static_cast<size_t>(b)]);
    i += 4;
    if (bytes.size() - i < n)
      return false;
    keys.emplace_back(bytes.substr(i, n));
    i += n;
  }
  return true;
}

bool handle_erase_op(erase_book* book, const actors::kv_request& req,
                     caf::typed_response_promise<std::string> rp) {
  using namespace actors;
  if (req.op != erase_ops::erase_keys && req.op != erase_ops::erase_prefix &&
      req.op != erase_ops::erase_status && req.op != erase_ops::erase_subject)
    return false;
  kv_reply r;
  auto fail = [&](std::string why) {
    r.error = std::move(why);
    rp.deliver(encode_message(msg_type::kv_reply, r));
    return true;
  };
  if (!book)
    return fail("erasure is not available on this node (not built for cluster mode yet)");
  std::optional<erase_receipt> got;
  if (req.op == erase_ops::erase_status) {
    got = book->get(req.key);
    if (!got)
      return fail("no erasure with id '" + req.key + "'");
  } else if (req.op == erase_ops::erase_prefix) {
    if (req.key.empty())
      return fail("an empty prefix matches every key: use flush to erase everything");
    got = book->start(erase_kind::prefix, {req.key});
  } else if (req.op == erase_ops::erase_subject) {
    if (req.key.empty())
      return fail("an empty subject id");
    got = book->start(erase_kind::subject, {req.key});
  } else {
    std::vector<std::string> keys;
    if (!unpack_keys(req.value, keys) || keys.empty())
      return fail("bad erase request: no keys");
    got = book->start(erase_kind::keys, std::move(keys));
  }
  r.found = true;
  r.value = got->to_json();
  rp.deliver(encode_message(msg_type::kv_reply, r));
  return true;
}

} // namespace kura::node
