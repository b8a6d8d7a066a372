// Subject tags on a cluster (node/subjects_sync.hpp).
#include "node/subjects_sync.hpp"

#include "node/erase.hpp"
#include "tiers/clock.hpp"

#include <iostream>
#include <map>

namespace kura::node {

namespace {

constexpr const char* tag_command = "kura.subject.node";
constexpr const char* pull_command = "kura.subject.pull";
constexpr uint64_t retry_every_ms = 1'000;
constexpr uint64_t check_every_ms = 250;
constexpr size_t page_bytes = 64 << 10;

// -- announce ---------------------------------------------------------------------------

void send_tag(std::weak_ptr<actors::cluster_core> wc, gossip::node_id to, std::string key,
              std::string id, uint64_t give_up_ms) {
  auto c = wc.lock();
  if (!c)
    return;
  c->forward(to, {tag_command, key, id},
             [wc, to, key, id, give_up_ms](bool ok, std::string reply) mutable {
               if (ok && !reply.empty() && reply[0] == '+')
                 return;
               auto c = wc.lock();
               if (!c)
                 return;
               if (real_clock::instance().now_ms() + retry_every_ms > give_up_ms) {
                 std::cerr << "kura-node: subject tag not stored on " << c->name_of(to) << ": "
                           << (ok ? reply.substr(0, reply.find('\r')) : "no answer")
                           << " (it pulls the tags it lacks when it is back; KURA.ERASE SUBJECT "
                              "finds the key through the members that hold the tag)"
                           << std::endl;
                 return;
               }
               c->after(retry_every_ms, [wc, to, key = std::move(key), id = std::move(id),
                                         give_up_ms] { send_tag(wc, to, key, id, give_up_ms); });
             });
}

// -- sync -------------------------------------------------------------------------------

struct peer_sync {
  bool seen_alive = false;
  uint64_t inc = 0;     ///< the incarnation last pulled from
  bool synced = false;  ///< pulled since it became alive (or the last resync)
  bool busy = false;    ///< a pull is out
  uint64_t next_ms = 0; ///< no pull before (after a failed one)
};

struct sync_state {
  std::shared_ptr<subject_index> tags;
  subject_sync_settings s;
  std::map<gossip::node_id, peer_sync> peers;
  uint64_t next_check_ms = 0, next_resync_ms = 0;
};

void pull(const std::shared_ptr<sync_state>& st, actors::cluster_core& c, gossip::node_id from,
          std::string after, size_t taken) {
  c.forward(
      from, {pull_command, st->tags->digest(), after},
      [st, cp = &c, from, taken](bool ok, std::string reply) {
        auto& p = st->peers[from];
        auto retry = [&](const std::string& why) {
          p.busy = false;
          p.next_ms = real_clock::instance().now_ms() + retry_every_ms;
          if (!why.empty())
            std::cerr << "kura-node: subject tags: pull from " << cp->name_of(from)
                      << " failed: " << why << std::endl;
        };
        if (!ok)
          return retry({}); // not reachable: it is tried again
        if (reply.rfind("+SAME", 0) == 0) {
          p.busy = false;
          p.synced = true;
          return;
        }
        if (reply.rfind("-TRYAGAIN", 0) == 0)
          return retry({}); // it is between an erasure's purge and collect
        std::vector<std::string> page;
        auto body_at = reply.find("\r\n");
        if (reply.empty() || reply[0] != '$' || body_at == std::string::npos ||
            reply.size() < body_at + 4 ||
            !unpack_keys(std::string_view(reply).substr(body_at + 2, reply.size() - body_at - 4),
                         page) ||
            page.empty() || page.size() % 2 != 1)
          return retry(reply.substr(0, reply.find('\r')));
        bool more = page[0] == "1";
        page.erase(page.begin());
        std::string error;
        long added = st->tags->merge(page, error);
        if (added < 0)
          return retry(error);
        size_t total = taken + static_cast<size_t>(added);
        if (more && !page.empty())
          return pull(st, *cp, from, page[page.size() - 2], total);
        if (total > 0)
          std::cerr << "kura-node: subject tags: took " << total << " tag(s) from "
                    << cp->name_of(from) << std::endl;
        p.busy = false;
        p.synced = true;
      });
}

void sync_step(const std::shared_ptr<sync_state>& st, actors::cluster_core& c, uint64_t now) {
  if (now < st->next_check_ms || !c.core())
    return;
  st->next_check_ms = now + check_every_ms;
  bool resync = now >= st->next_resync_ms;
  if (resync)
    st->next_resync_ms = now + st->s.resync_ms;
  for (auto& [id, m] : c.core()->members().members()) {
    if (id == c.self_id())
      continue;
    auto& p = st->peers[id];
    bool alive = m.state == gossip::member_state::alive;
    if (!alive || m.inc != p.inc || resync)
      p.synced = false; // down (or left), restarted, or time to compare again
    p.seen_alive = alive;
    if (!alive || p.synced || p.busy || now < p.next_ms)
      continue;
    p.inc = m.inc;
    p.busy = true;
    pull(st, c, id, {}, 0);
  }
}

} // namespace

void announce_subject_tags(std::shared_ptr<subject_index> subjects,
                           std::shared_ptr<actors::cluster_core> core, subject_sync_settings s) {
  std::weak_ptr<actors::cluster_core> wc = core;
  subjects->on_tag = [wc, s](const std::string& key, const std::string& id) {
    auto c = wc.lock();
    if (!c || !c->core())
      return;
    uint64_t give_up = real_clock::instance().now_ms() + s.retry_ms;
    for (auto& [mid, m] : c->core()->members().members())
      if (m.state != gossip::member_state::left && mid != c->self_id())
        send_tag(wc, mid, key, id, give_up);
  };
}

std::function<void(actors::cluster_core&, uint64_t)>
subject_sync_hook(std::shared_ptr<subject_index> subjects, subject_sync_settings s,
                  std::function<void(actors::cluster_core&, uint64_t)> inner) {
  auto st = std::make_shared<sync_state>();
  st->tags = std::move(subjects);
  st->s = s;
  return [st, inner = std::move(inner)](actors::cluster_core& c, uint64_t now) {
    sync_step(st, c, now);
    if (inner)
      inner(c, now);
  };
}

bool serve_subject_command(subject_index* subjects, bool holding_back,
                           const std::vector<std::string>& args,
                           const std::function<void(std::string)>& reply) {
  if (args.empty() || (args[0] != tag_command && args[0] != pull_command))
    return false;
  if (args.size() != 3)
    return reply("-ERR malformed " + args[0] + "\r\n"), true;
  if (!subjects)
    return reply("-ERR this node keeps no subject tags\r\n"), true;
  if (args[0] == tag_command) { // another member's KURA.SUBJECT
    if (args[2].empty())
      return reply("-ERR malformed kura.subject.node\r\n"), true;
    std::string error;
    subjects->tag(args[1], args[2], error, false);
    reply(error.empty() ? "+OK\r\n" : "-ERR the subject tag was not stored: " + error + "\r\n");
    return true;
  }
  // kura.subject.pull digest after
  if (holding_back)
    return reply("-TRYAGAIN an erasure's collect step has not run here yet\r\n"), true;
  if (args[2].empty() && args[1] == subjects->digest())
    return reply("+SAME\r\n"), true;
  bool more = false;
  auto page = subjects->page(args[2], page_bytes, more);
  page.insert(page.begin(), more ? "1" : "0");
  auto packed = pack_keys(page);
  reply("$" + std::to_string(packed.size()) + "\r\n" + packed + "\r\n");
  return true;
}

} // namespace kura::node
