#include "actors/ring_marks.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace kura::actors {

namespace {

std::string path_of(const std::string& dir) {
  return dir + "/cluster.ring";
}

std::string sys_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

bool parse_u32(const std::string& s, uint32_t& out) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  out = static_cast<uint32_t>(std::stoul(s));
  return true;
}

} // namespace

std::string load_ring_marks(const std::string& dir, ring_marks& out) {
  out = ring_marks{};
  std::ifstream f(path_of(dir));
  if (!f)
    return {};
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty() || line[0] == '#')
      continue;
    auto eq = line.find('=');
    auto key = line.substr(0, eq);
    auto val = eq == std::string::npos ? std::string() : line.substr(eq + 1);
    uint32_t v = 0;
    if (eq == std::string::npos || !parse_u32(val, v) || (key != "drained" && key != "tokens") ||
        (key == "drained" && v > 1))
      return path_of(dir) + ": bad line '" + line + "' (expected drained=0|1 or tokens=N)";
    if (key == "drained")
      out.drained = v == 1;
    else
      out.tokens = v;
  }
  return {};
}

std::string save_ring_marks(const std::string& dir, const ring_marks& m) {
  auto path = path_of(dir);
  auto tmp = path + ".tmp";
  std::ostringstream text;
  text << "# kura drain / kura rebalance marks of this node (actors/ring_marks.hpp)\n"
       << "drained=" << (m.drained ? 1 : 0) << "\ntokens=" << m.tokens << "\n";
  auto body = text.str();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return sys_error("cannot write " + tmp);
  size_t done = 0;
  while (done < body.size()) {
    auto n = ::write(fd, body.data() + done, body.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      auto e = sys_error("cannot write " + tmp);
      ::close(fd);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = sys_error("cannot fsync " + tmp);
    ::close(fd);
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return sys_error("cannot rename " + tmp + " to " + path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

} // namespace kura::actors
