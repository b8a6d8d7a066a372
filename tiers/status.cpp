#include "tiers/status.hpp"

namespace kura {

const char* to_string(errc code) noexcept {
  switch (code) {
  case errc::ok:
    return "ok";
  case errc::key_too_large:
    return "key_too_large";
  case errc::value_too_large:
    return "value_too_large";
  case errc::invalid_argument:
    return "invalid_argument";
  case errc::io_error:
    return "io_error";
  case errc::corrupt:
    return "corrupt";
  case errc::foreign_file:
    return "foreign_file";
  case errc::out_of_space:
    return "out_of_space";
  case errc::not_found:
    return "not_found";
  case errc::closed:
    return "closed";
  case errc::decode_error:
    return "decode_error";
  case errc::timeout:
    return "timeout";
  case errc::bad_key:
    return "bad_key";
  }
  return "unknown";
}

std::string error::to_string() const {
  std::string s = kura::to_string(code);
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  return s;
}

} // namespace kura
