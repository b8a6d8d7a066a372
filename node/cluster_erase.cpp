// KURA.ERASE on a cluster node (node/cluster_erase.hpp).
#include "node/cluster_erase.hpp"

#include "actors/erase_tiers.hpp"
#include "gossip/tier_store.hpp"
#include "node/erase.hpp"
#include "node/erase_book.hpp"
#include "node/subjects_sync.hpp"
#include "tiers/clock.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <iostream>
#include <set>

namespace kura::node {

namespace {

constexpr const char* step_command = "kura.erase.node";
constexpr uint64_t retry_ms = 1'000;
constexpr uint64_t collect_wait_ms = 3'600'000; ///< see collect_pending()

uint64_t now_ms() {
  return real_clock::instance().now_ms();
}

std::string ver_str(const version& v) {
  return std::to_string(v.hlc) + "." + std::to_string(v.node);
}

bool parse_ver(const std::string& s, version& v) {
  auto dot = s.find('.');
  if (dot == std::string::npos)
    return false;
  try {
    v.hlc = std::stoull(s.substr(0, dot));
    v.node = static_cast<uint32_t>(std::stoul(s.substr(dot + 1)));
  } catch (...) {
    return false;
  }
  return true;
}

// -- a member's side -------------------------------------------------------------------

/// "ok l3 l4 hints near segments" or "err why".
std::string run_step(actors::cluster_core& c, const std::string& step,
                     const std::vector<std::string>& keys, const version& v) {
  auto* g = c.core_mut();
  if (!g)
    return "err this node has not joined the cluster yet";
  auto* ts = dynamic_cast<gossip::tier_store*>(&g->store_for_maintenance());
  uint64_t now = now_ms();
  uint64_t l3 = 0, l4 = 0, hints = 0, near = 0;
  bool retire = false;
  for (size_t i = 0; i < keys.size(); ++i) {
    bool archived = ts && ts->archived(keys[i]);
    auto n = step == "purge" ? g->erase_purge(keys[i], v, now) : g->erase_collect(keys[i], v, now);
    if (archived && n.store > 0) {
      ++l4;
      retire = true;
    }
    l3 += n.store;
    hints += n.hints;
    near += n.near;
  }
  uint64_t segments = 0;
  if (ts) {
    auto match = actors::erase_matcher(actors::erase_mode::keys, keys);
    auto r = ts->rewrite_for_erase(match, retire);
    if (!r)
      return "err " + r.err().to_string();
    segments = *r;
  }
  return "ok " + std::to_string(l3) + " " + std::to_string(l4) + " " + std::to_string(hints) + " " +
         std::to_string(near) + " " + std::to_string(segments);
}

/// The subject id of a SUBJECT erasure's arguments ("i" + id), or "".
std::string subject_of(uint8_t mode, const std::vector<std::string>& margs) {
  if (mode == erase_kind::subject)
    for (auto& m : margs)
      if (m.size() > 1 && m[0] == 'i')
        return m.substr(1);
  return {};
}

/// SUBJECT: adds this member's tagged keys of the subject to `margs` (as
/// "k" + key, what erase_matcher takes) and returns them.
std::vector<std::string> tagged_keys(const cluster_erase_memory& mem, uint8_t mode,
                                     std::vector<std::string>& margs) {
  std::vector<std::string> out;
  auto id = subject_of(mode, margs);
  if (id.empty() || !mem.subjects)
    return out;
  out = mem.subjects->keys_of(id);
  for (auto& k : out)
    margs.push_back("k" + k);
  return out;
}

void member_step(actors::cluster_core& c, cluster_erase_memory& mem,
                 const std::vector<std::string>& a, const std::function<void(std::string)>& reply) {
  auto err = [&](const std::string& why) { reply("-ERR " + why + "\r\n"); };
  auto bulk = [&](const std::string& s) {
    reply("$" + std::to_string(s.size()) + "\r\n" + s + "\r\n");
  };
  if (a.size() < 2)
    return err("malformed kura.erase.node");
  if (a[1] == "match" && a.size() >= 3) { // match mode args...
    auto* g = c.core_mut();
    if (!g)
      return err("this node has not joined the cluster yet");
    uint8_t mode = static_cast<uint8_t>(std::atoi(a[2].c_str()));
    std::vector<std::string> margs(a.begin() + 3, a.end());
    auto tagged = tagged_keys(mem, mode, margs);
    auto match = actors::erase_matcher(mode, margs);
    auto keys = g->erase_candidates(match);
    // the keys this member's tags give the subject, held here or not: their
    // replicas may have missed the tag (down when it was set)
    keys.insert(keys.end(), tagged.begin(), tagged.end());
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return bulk(pack_keys(keys));
  }
  // step id version mode packed-args packed-keys
  if ((a[1] == "purge" || a[1] == "collect") && a.size() == 7) {
    std::string memo = a[2] + "/" + a[1];
    if (auto it = mem.done.find(memo); it != mem.done.end())
      return bulk(it->second); // a retry: the step ran
    version v;
    std::vector<std::string> margs, keys;
    if (!parse_ver(a[3], v) || !unpack_keys(a[5], margs) || !unpack_keys(a[6], keys))
      return err("malformed kura.erase.node step");
    // PREFIX and SUBJECT: what this member holds of them too (a key only a
    // member that was down holds)
    // The ones the issuer did not know (its match missed this member) go
    // back with the counts, so the receipt's `matched` covers them.
    auto mode = static_cast<uint8_t>(std::atoi(a[4].c_str()));
    auto tagged = tagged_keys(mem, mode, margs);
    std::vector<std::string> extra;
    if (mode != erase_kind::keys) {
      std::set<std::string> issued(keys.begin(), keys.end());
      for (auto& k : tagged)
        if (issued.insert(k).second)
          extra.push_back(k);
      if (auto* g = c.core_mut())
        for (auto& k : g->erase_candidates(actors::erase_matcher(mode, margs)))
          if (issued.insert(k).second)
            extra.push_back(k);
    }
    keys.insert(keys.end(), extra.begin(), extra.end());
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::sort(extra.begin(), extra.end());
    auto out = run_step(c, a[1], keys, v);
    if (out.rfind("ok", 0) == 0 && a[1] == "collect" && mem.subjects) {
      // erased keys (and an erased subject) lose their tags on every member
      if (auto why = mem.subjects->forget(subject_of(mode, margs), keys); !why.empty())
        out = "err subject tags: " + why;
    }
    if (out.rfind("ok", 0) == 0) {
      out += "\n" + pack_keys(extra); // "ok counts...\n<packed keys>"
      if (mem.done.size() > 4096)     // old ids: the issuer stopped retrying them long ago
        mem.done.erase(mem.done.begin());
      mem.done[memo] = out;
      if (a[1] == "purge")
        mem.purged.emplace(a[2], now_ms());
      else
        mem.purged.erase(a[2]);
    } else {
      std::cerr << "kura-node: erase " << a[2] << " " << a[1] << ": " << out << std::endl;
    }
    return bulk(out);
  }
  err("unknown kura.erase.node step");
}

/// This member ran the purge of an erasure whose collect has not come (in
/// the last hour): its tag file may still hold tags that other members
/// dropped at their collect step.
bool collect_pending(cluster_erase_memory& mem) {
  uint64_t now = now_ms();
  for (auto it = mem.purged.begin(); it != mem.purged.end();)
    it = it->second + collect_wait_ms < now ? mem.purged.erase(it) : std::next(it);
  return !mem.purged.empty();
}

// -- the issuer ------------------------------------------------------------------------

using job_atom = caf::atom_constant<caf::atom("cerase_job")>;
using tick_atom = caf::atom_constant<caf::atom("cerase_tk")>;

struct node_part {
  std::string name;
  std::string state = "pending";
  bool busy = false; ///< a step request is out
  erase_node_row row;
};

struct cjob {
  erase_receipt r;
  uint8_t mode = 0;
  std::vector<std::string> args;
  std::string subject;
  std::string phase = "match"; ///< match, purge, collect
  std::set<gossip::node_id> asked;
  std::set<std::string> matched;
  std::vector<std::string> keys;
  version ver; ///< the erasure's version
  int match_rounds = 0;
  std::map<gossip::node_id, node_part> nodes;
};

struct eraser_state {
  std::shared_ptr<erase_book> book;
  std::shared_ptr<actors::cluster_core> core;
  caf::actor resp;
  std::shared_ptr<const subject_patterns> patterns;
  std::shared_ptr<subject_index> subjects;
  std::map<std::string, cjob> jobs; ///< by id; they run side by side
  bool ticking = false;
  static inline const char* name = "kura.cluster-erase";
};

using eraser_ptr = caf::stateful_actor<eraser_state, caf::io::broker>*;

void schedule(eraser_ptr self, uint64_t ms) {
  if (self->state.ticking)
    return; // one timer at a time
  self->state.ticking = true;
  self->delayed_send(self, std::chrono::milliseconds(ms), tick_atom::value);
}

void publish(eraser_ptr self, cjob& j) {
  j.r.nodes.clear();
  j.r.l3 = j.r.l4 = j.r.memory = j.r.l4_segments = 0;
  for (auto& [id, p] : j.nodes) {
    p.row.node = p.name;
    p.row.state = p.state;
    j.r.nodes.push_back(p.row);
    j.r.l3 += p.row.l3;
    j.r.l4 += p.row.l4;
    j.r.memory += p.row.near;
    j.r.l4_segments += p.row.l4_segments;
  }
  self->state.book->put(j.r);
}

void finish(eraser_ptr self, cjob& j, std::string error) {
  auto& st = self->state;
  j.r.state = error.empty() ? "done" : "failed";
  j.r.error = std::move(error);
  j.r.matched = j.keys.size();
  j.r.finished_ms = now_ms();
  if (st.subjects && j.r.error.empty()) // erased keys (and an erased subject) lose their tags
    if (auto why = st.subjects->forget(j.subject, j.keys); !why.empty())
      j.r.error = "subject tags: " + why;
  publish(self, j);
  if (st.resp)
    self->send(st.resp, erase_audit_atom::value, j.r.to_json());
  std::cerr << "kura-node: erase " << j.r.id << " " << j.r.state << ": " << j.r.matched
            << " key(s) on " << j.nodes.size() << " node(s), L3 " << j.r.l3 << ", L4 " << j.r.l4
            << (j.r.error.empty() ? "" : " (" + j.r.error + ")") << std::endl;
  j.phase = "finished"; // step() drops it
}

/// Every member that has not left (down ones included: they get the
/// erasure when they are back).
void enroll_members(eraser_ptr self, cjob& j) {
  auto& core = *self->state.core;
  auto* g = core.core();
  if (!g)
    return;
  for (auto& [id, m] : g->members().members())
    if (m.state != gossip::member_state::left && !j.nodes.count(id)) {
      node_part p;
      p.name = core.name_of(id);
      if (p.name.empty())
        p.name = std::to_string(id);
      j.nodes.emplace(id, std::move(p));
    }
  if (!j.nodes.count(core.self_id())) {
    node_part p;
    p.name = core.settings().name;
    j.nodes.emplace(core.self_id(), std::move(p));
  }
}

void step_job(eraser_ptr self, cjob& j);
void mint_phase(eraser_ptr self, cjob& j);

void match_phase(eraser_ptr self, cjob& j) {
  auto& core = *self->state.core;
  if (j.mode == erase_kind::keys) {
    j.matched.insert(j.args.begin(), j.args.end());
    return mint_phase(self, j);
  }
  auto members = core.ring_members();
  bool waiting = false;
  for (auto id : members) {
    if (j.asked.count(id))
      continue;
    waiting = true;
    std::vector<std::string> a{step_command, "match", std::to_string(j.mode)};
    a.insert(a.end(), j.args.begin(), j.args.end());
    auto jid = j.r.id;
    core.forward(id, std::move(a), [self, jid, id](bool ok, std::string reply) {
      auto it = self->state.jobs.find(jid);
      if (it == self->state.jobs.end())
        return;
      auto& jj = it->second;
      std::vector<std::string> keys;
      if (ok && reply.size() > 1 && reply[0] == '$') {
        auto body = reply.substr(reply.find("\r\n") + 2);
        body.resize(body.size() >= 2 ? body.size() - 2 : 0);
        if (unpack_keys(body, keys)) {
          jj.matched.insert(keys.begin(), keys.end());
          jj.asked.insert(id);
        }
      }
    });
  }
  if (!waiting || ++j.match_rounds > 10) // every member answered (or gave up)
    return mint_phase(self, j);
  schedule(self, retry_ms);
}

/// The erasure's version: one new version of this node's clock for every
/// key; copies older than it go, later writes stay.
void mint_phase(eraser_ptr self, cjob& j) {
  j.keys.assign(j.matched.begin(), j.matched.end());
  if (j.keys.empty())
    return finish(self, j, {});
  auto* g = self->state.core->core_mut();
  auto v = g->clock().now(now_ms());
  j.ver = v;
  j.phase = "purge";
  step_job(self, j);
}

void member_phase(eraser_ptr self, cjob& j) {
  auto& core = *self->state.core;
  enroll_members(self, j);
  const std::string want = j.phase == "purge" ? "purged" : "done";
  bool all = true;
  auto packed_keys = pack_keys(j.keys), packed_args = pack_keys(j.args);
  auto ver = ver_str(j.ver);
  for (auto& [id, p] : j.nodes) {
    if (p.state == want)
      continue;
    all = false;
    if (p.busy)
      continue;
    p.busy = true;
    auto jid = j.r.id;
    auto phase = j.phase;
    core.forward(
        id, {step_command, phase, jid, ver, std::to_string(j.mode), packed_args, packed_keys},
        [self, jid, id = id, phase, want](bool ok, std::string reply) {
          auto it = self->state.jobs.find(jid);
          if (it == self->state.jobs.end())
            return;
          auto& jj = it->second;
          auto& part = jj.nodes[id];
          part.busy = false;
          auto at = reply.find("ok ");
          if (!ok || reply.empty() || reply[0] != '$' || at == std::string::npos)
            return; // retried at the next tick
          uint64_t l3 = 0, l4 = 0, hints = 0, near = 0, segs = 0;
          if (std::sscanf(reply.c_str() + at, "ok %lu %lu %lu %lu %lu", &l3, &l4, &hints, &near,
                          &segs) != 5)
            return;
          // keys only this member matched (its match answer was missed)
          auto nl = reply.find('\n', at);
          auto body_end = reply.size() >= 2 ? reply.size() - 2 : reply.size();
          if (nl != std::string::npos && nl < body_end) {
            std::vector<std::string> extra;
            if (unpack_keys(std::string_view(reply).substr(nl + 1, body_end - nl - 1), extra))
              jj.matched.insert(extra.begin(), extra.end());
          }
          part.row.l3 += l3;
          part.row.l4 += l4;
          part.row.hints += hints;
          part.row.near += near;
          part.row.l4_segments += segs;
          part.state = want;
          publish(self, jj);
        });
  }
  if (all) {
    if (j.phase == "purge") {
      // what members matched beyond the issuer's list is collected (and
      // fenced with a floor) on every member too
      j.keys.assign(j.matched.begin(), j.matched.end());
      j.phase = "collect";
      j.r.state = "collect";
      publish(self, j);
      return step_job(self, j);
    }
    return finish(self, j, {});
  }
  schedule(self, retry_ms);
}

void step_job(eraser_ptr self, cjob& j) {
  if (j.r.state == "queued") {
    j.r.state = j.phase;
    enroll_members(self, j);
    publish(self, j);
  }
  if (j.phase == "match")
    return match_phase(self, j);
  if (j.phase == "purge" && j.r.state != "purge") {
    j.r.state = "purge";
    publish(self, j);
  }
  if (j.phase == "purge" || j.phase == "collect")
    member_phase(self, j);
}

void step(eraser_ptr self) {
  auto& st = self->state;
  if (!st.core->ready()) {
    if (!st.jobs.empty())
      schedule(self, retry_ms);
    return;
  }
  std::vector<std::string> ids;
  for (auto& [id, j] : st.jobs)
    ids.push_back(id);
  for (auto& id : ids)
    if (auto it = st.jobs.find(id); it != st.jobs.end())
      step_job(self, it->second);
  for (auto it = st.jobs.begin(); it != st.jobs.end();)
    it = it->second.phase == "finished" ? st.jobs.erase(it) : std::next(it);
}

caf::behavior eraser(eraser_ptr self, std::shared_ptr<erase_book> book,
                     std::shared_ptr<actors::cluster_core> core, caf::actor resp,
                     std::shared_ptr<const subject_patterns> patterns,
                     std::shared_ptr<subject_index> subjects) {
  auto& st = self->state;
  st.book = std::move(book);
  st.core = std::move(core);
  st.resp = std::move(resp);
  st.patterns = std::move(patterns);
  st.subjects = std::move(subjects);
  return {
      [self](job_atom, const std::string& id, uint8_t mode, std::vector<std::string>& args) {
        auto& st = self->state;
        auto r = st.book->get(id);
        if (!r)
          return;
        cjob j;
        j.r = *r;
        j.mode = mode;
        if (mode == erase_kind::subject) { // its globs and tagged keys, as they are now
          j.subject = args.empty() ? std::string{} : args[0];
          j.args.push_back("i" + j.subject); // members add the keys they hold tagged
          if (st.patterns)
            for (auto& g : st.patterns->globs_for(j.subject))
              j.args.push_back("g" + g);
          if (st.subjects)
            for (auto& k : st.subjects->keys_of(j.subject))
              j.args.push_back("k" + k);
        } else {
          j.args = std::move(args);
        }
        st.jobs.emplace(j.r.id, std::move(j));
        step(self);
      },
      [self](tick_atom) {
        self->state.ticking = false;
        step(self);
      },
  };
}

} // namespace

actors::exec_fn cluster_erase_exec(std::shared_ptr<cluster_erase_memory> mem,
                                   actors::exec_fn inner) {
  return [mem, inner](actors::cluster_core& c, std::vector<std::string> args,
                      std::function<void(std::string)> reply) {
    if (!args.empty() && args[0] == step_command)
      return member_step(c, *mem, args, reply);
    if (serve_subject_command(mem->subjects.get(), collect_pending(*mem), args, reply))
      return; // kura.subject.node, kura.subject.pull (node/subjects_sync.hpp)
    if (inner)
      return inner(c, std::move(args), std::move(reply));
    reply("-ERR forwarded commands are not served by this node\r\n");
  };
}

caf::actor spawn_cluster_eraser(caf::actor_system& sys, std::shared_ptr<erase_book> book,
                                std::shared_ptr<actors::cluster_core> core, caf::actor resp,
                                std::shared_ptr<const subject_patterns> patterns,
                                std::shared_ptr<subject_index> subjects) {
  auto b = book;
  auto a = sys.middleman().spawn_broker(eraser, std::move(book), std::move(core), std::move(resp),
                                        std::move(patterns), std::move(subjects));
  b->set_dispatcher([a](const std::string& id, uint8_t mode, std::vector<std::string> args) {
    caf::anon_send(a, job_atom::value, id, mode, std::move(args));
  });
  return a;
}

} // namespace kura::node
