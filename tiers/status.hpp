// Errors are values in kura's cores: no exception escapes a core's public API.
// `status` is ok-or-error, `result<T>` is value-or-error. A cache miss is never an
// error (it is an empty std::optional); errors are bad input, I/O and corruption.
// Thread safety: plain value types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kura {

/// Error codes shared by every core (and mapped to caf::error by actors/).
enum class errc : uint8_t {
  ok = 0,
  key_too_large,    ///< key longer than limits::max_key_bytes
  value_too_large,  ///< value longer than limits::max_value_bytes
  invalid_argument, ///< malformed input (bad config, bad message)
  io_error,         ///< a file or system call failed
  corrupt,          ///< on-disk data failed a checksum or format check
  foreign_file,     ///< a file that is not kura's (or another version's)
  out_of_space,     ///< LMDB map full, disk full, budget exhausted
  not_found,        ///< an addressed object (segment, member) does not exist
  closed,           ///< the object was closed / shut down
  decode_error,     ///< bytes from outside could not be decoded
  timeout,          ///< a bounded wait ran out
  bad_key,          ///< encrypted data without its key, or with a wrong key
};

/// Short stable name of an error code ("key_too_large").
const char* to_string(errc code) noexcept;

/// An error: code plus a human readable message that says what and where.
struct error {
  errc code = errc::ok;
  std::string message;
  std::string to_string() const;
};

/// Either ok or an error.
class [[nodiscard]] status {
public:
  status() = default;
  status(error err) : err_(std::move(err)) {}
  status(errc code, std::string msg) : err_(error{code, std::move(msg)}) {}
  static status ok_status() { return status{}; }

  bool ok() const noexcept { return !err_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  errc code() const noexcept { return err_ ? err_->code : errc::ok; }
  const error& err() const { return *err_; }
  std::string message() const { return err_ ? err_->to_string() : "ok"; }

private:
  std::optional<error> err_;
};

/// Either a T or an error.
template <class T>
class [[nodiscard]] result {
public:
  result(T value) : v_(std::move(value)) {}
  result(error err) : v_(std::move(err)) {}
  result(status st) : v_(st.err()) {} // precondition: !st.ok()
  result(errc code, std::string msg) : v_(error{code, std::move(msg)}) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const error& err() const { return std::get<1>(v_); }
  errc code() const noexcept { return ok() ? errc::ok : err().code; }
  status to_status() const { return ok() ? status{} : status{err()}; }

private:
  std::variant<T, error> v_;
};

} // namespace kura
