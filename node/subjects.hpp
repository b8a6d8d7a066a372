// Data subjects (docs/security.md, "Data subjects"): which keys belong to a
// person, so that KURA.ERASE SUBJECT id removes all of them.
//
// A key belongs to subject `id` when
//   - a configured pattern (kura.security.subject-patterns, e.g.
//     `user:{id}:*`) matches it with `{id}` standing for the id, or
//   - it was tagged explicitly with KURA.SUBJECT key id (subject_index).
// `{id}` matches a non-empty run of characters up to the literal character
// that follows `{id}` in the pattern (the separator; or up to the end of the
// key when `{id}` ends the pattern), so `user:{id}:*` gives key
// `user:42:a:b` the subject `42`, never `42:a`. The rest of the pattern is a
// Redis glob (* ? [..] \x).
//
// Explicit tags are kept in `<data-dir>/subjects` (length-prefixed records,
// sealed with the node's master key when encryption at rest is on, fsynced at
// every new tag). An erasure drops the tags of the subject (and of every key
// it erased) and rewrites the file, so the erased key names leave it.
// Thread safety: subject_patterns is immutable after parse; subject_index is
// safe for concurrent use (the RESP broker tags, the erase coordinator
// forgets).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kura::crypto {
class keyring;
}

namespace kura::node {

/// The configured subject patterns.
class subject_patterns {
public:
  /// Parses a comma-separated list of patterns, each with exactly one
  /// `{id}` that ends the pattern or is followed by a literal character.
  /// Returns "" or why not (names the pattern).
  static std::string parse(std::string_view list, subject_patterns& out);
  bool empty() const { return parts_.empty(); }
  /// The patterns as configured.
  const std::vector<std::string>& list() const { return list_; }
  /// The globs the keys of subject `id` match (the id's glob characters
  /// escaped); a pattern whose separator occurs in `id` matches none.
  std::vector<std::string> globs_for(std::string_view id) const;
  /// The subject ids the patterns give `key` (usually zero or one).
  std::vector<std::string> ids_of(std::string_view key) const;

private:
  struct split {
    std::string before; ///< glob before {id}
    std::string after;  ///< glob after {id} ("" or starting with the separator)
  };
  std::vector<std::string> list_;
  std::vector<split> parts_;
};

/// Escapes the glob characters of `s` (* ? [ ] \) so that it matches itself.
std::string glob_escape(std::string_view s);

/// Explicit subject tags (KURA.SUBJECT key id), persisted.
class subject_index {
public:
  /// `path` "" keeps tags in memory only; `keys` non-null seals the file.
  subject_index(std::string path, std::shared_ptr<const crypto::keyring> keys);
  /// Reads the file; "" or why not. A torn last record (a crash during an
  /// append) is dropped; a record that does not open (wrong key, tampered)
  /// is an error and the file is left as it is.
  std::string load();
  /// Tags `key` with subject `id`: 1 if new, 0 if it already was; "" in
  /// `error` unless the file could not be written (the tag is then not kept).
  /// A kept tag is passed to `on_tag` when `announce` (a cluster node sends it
  /// to the other members, node/cluster_erase.hpp).
  int tag(std::string_view key, std::string_view id, std::string& error, bool announce = true);
  /// Called (outside the lock) with every tag KURA.SUBJECT kept, new or not.
  /// Set once before the index is used.
  std::function<void(const std::string& key, const std::string& id)> on_tag;
  std::vector<std::string> ids_of(std::string_view key) const;
  std::vector<std::string> keys_of(std::string_view id) const;
  /// Forgets the subject `id` ("" = none) and every tag of `keys`, then
  /// rewrites the file when something was dropped. "" or why not.
  /// The subject and the keys are also fenced for `fence_ms` (below).
  std::string forget(std::string_view id, const std::vector<std::string>& keys);
  size_t size() const;

  // -- cluster tag sync (node/subjects_sync.hpp) ------------------------------------

  /// A digest of every tag held: equal sets give equal digests (an XOR of
  /// each tag's 64-bit hash, with the count). Kept up to date, O(1).
  std::string digest() const;
  /// Tags of the keys after `after` ("": from the first), in key order, as
  /// key, id, key, id...; at least every tag of one key, then whole keys up
  /// to about `max_bytes`. `more` tells whether keys follow.
  std::vector<std::string> page(std::string_view after, size_t max_bytes, bool& more) const;
  /// Adds the tags of `pairs` (key, id, key, id...) that are not held and
  /// not fenced, with one append and one fsync; the number added, or -1
  /// with `error` (nothing is then kept). Not announced (on_tag).
  long merge(const std::vector<std::string>& pairs, std::string& error);
  /// How long merge() refuses a subject or key that forget() dropped (a
  /// member that has not run an erasure's collect step yet must not hand the
  /// dropped tags back). Default 1 h, the cluster's tombstone grace.
  void set_fence_ms(uint64_t ms);

private:
  int tag_locked(std::string_view key, std::string_view id, std::string& error);
  /// Appends `data` (records) to the file and fsyncs it; "" or why not.
  std::string append_locked(std::string data);
  void add_locked(const std::string& key, const std::string& id);
  bool fenced_locked(const std::string& key, const std::string& id, uint64_t now);
  std::string record(std::string_view key, std::string_view id) const;
  std::string rewrite_locked();
  mutable std::mutex mu_;
  std::string path_;
  std::shared_ptr<const crypto::keyring> keys_;
  std::map<std::string, std::set<std::string>> by_key_;
  std::map<std::string, std::set<std::string>> by_id_;
  size_t tags_ = 0;
  uint64_t digest_ = 0; ///< XOR of tag_hash() of every tag
  uint64_t fence_ms_ = 3'600'000;
  std::map<std::string, uint64_t> fenced_ids_, fenced_keys_; ///< -> until (ms, steady clock)
};

} // namespace kura::node
