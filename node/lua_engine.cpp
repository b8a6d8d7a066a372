#include "node/lua_engine.hpp"

#include <lua.hpp>
#include <openssl/sha.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

// Lua raises errors with longjmp: a C function of the `redis` table that may
// raise keeps no C++ object with a destructor alive at that point (the work
// happens in helpers that return first), and no C++ exception crosses a Lua
// frame (each entry point catches them).

namespace kura::node {

namespace {

const char* const engine_key = "kura_engine";
const char* const handler_key = "kura_err_handler";

lua_engine* engine_of(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, engine_key);
  auto* e = static_cast<lua_engine*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return e;
}

// -- RESP -> Lua -----------------------------------------------------------------

/// Pushes Redis's error table for `text`: "-CODE msg" keeps CODE, a bare
/// "msg" gets "ERR"; a trailing CR/LF is cut.
void push_error_table(lua_State* L, std::string_view text) {
  std::string code = "ERR";
  std::string_view msg = text;
  if (!text.empty() && text[0] == '-') {
    auto sp = text.find(' ');
    if (sp == std::string_view::npos) {
      msg = text.substr(1);
    } else {
      code.assign(text.substr(1, sp - 1));
      msg = text.substr(sp + 1);
    }
  }
  while (!msg.empty() && (msg.back() == '\r' || msg.back() == '\n'))
    msg.remove_suffix(1);
  std::string full = code + " ";
  full.append(msg);
  lua_newtable(L);
  lua_pushstring(L, "err");
  lua_pushlstring(L, full.data(), full.size());
  lua_settable(L, -3);
}

struct resp_reader {
  std::string_view s;
  size_t pos = 0;
  bool line(std::string_view& out) {
    auto e = s.find("\r\n", pos);
    if (e == std::string_view::npos)
      return false;
    out = s.substr(pos, e - pos);
    pos = e + 2;
    return true;
  }
  static bool number(std::string_view t, long long& v) {
    if (t.empty())
      return false;
    bool neg = t[0] == '-';
    size_t i = neg ? 1 : 0;
    if (i >= t.size())
      return false;
    unsigned long long n = 0;
    for (; i < t.size(); ++i) {
      if (t[i] < '0' || t[i] > '9')
        return false;
      n = n * 10 + static_cast<unsigned>(t[i] - '0');
    }
    v = neg ? -static_cast<long long>(n) : static_cast<long long>(n);
    return true;
  }
  bool bulk(long long n, std::string_view& out) {
    if (n < 0 || pos + static_cast<size_t>(n) + 2 > s.size())
      return false;
    out = s.substr(pos, static_cast<size_t>(n));
    pos += static_cast<size_t>(n) + 2;
    return true;
  }
};

bool push_reply(lua_State* L, resp_reader& r, int depth) {
  if (depth > 100 || r.pos >= r.s.size() || !lua_checkstack(L, 4))
    return false;
  char t = r.s[r.pos++];
  std::string_view ln;
  if (!r.line(ln))
    return false;
  long long n = 0;
  switch (t) {
  case ':':
    if (!resp_reader::number(ln, n))
      return false;
    lua_pushnumber(L, static_cast<lua_Number>(n));
    return true;
  case '+':
    lua_newtable(L);
    lua_pushstring(L, "ok");
    lua_pushlstring(L, ln.data(), ln.size());
    lua_settable(L, -3);
    return true;
  case '-': {
    std::string e = "-";
    e.append(ln);
    push_error_table(L, e);
    return true;
  }
  case '$':
  case '=': {
    if (!resp_reader::number(ln, n))
      return false;
    if (n < 0) {
      lua_pushboolean(L, 0);
      return true;
    }
    std::string_view b;
    if (!r.bulk(n, b))
      return false;
    if (t == '$') {
      lua_pushlstring(L, b.data(), b.size());
      return true;
    }
    // verbatim string: "txt:payload"
    lua_newtable(L);
    lua_pushstring(L, "verbatim_string");
    lua_newtable(L);
    lua_pushstring(L, "format");
    lua_pushlstring(L, b.data(), std::min<size_t>(3, b.size()));
    lua_settable(L, -3);
    lua_pushstring(L, "string");
    auto payload = b.size() > 4 ? b.substr(4) : std::string_view{};
    lua_pushlstring(L, payload.data(), payload.size());
    lua_settable(L, -3);
    lua_settable(L, -3);
    return true;
  }
  case '*':
  case '~':
  case '%':
  case '>': {
    if (!resp_reader::number(ln, n))
      return false;
    if (n < 0) {
      lua_pushboolean(L, 0);
      return true;
    }
    lua_newtable(L);
    if (t == '*' || t == '>') {
      for (long long i = 1; i <= n; ++i) {
        lua_pushnumber(L, static_cast<lua_Number>(i));
        if (!push_reply(L, r, depth + 1)) {
          lua_pop(L, 2);
          return false;
        }
        lua_settable(L, -3);
      }
      return true;
    }
    lua_pushstring(L, t == '%' ? "map" : "set");
    lua_newtable(L);
    for (long long i = 0; i < n; ++i) {
      if (!push_reply(L, r, depth + 1)) {
        lua_pop(L, 3);
        return false;
      }
      if (t == '%') {
        if (!push_reply(L, r, depth + 1)) {
          lua_pop(L, 4);
          return false;
        }
      } else {
        lua_pushboolean(L, 1);
      }
      lua_settable(L, -3);
    }
    lua_settable(L, -3);
    return true;
  }
  case '_':
    lua_pushnil(L);
    return true;
  case '#':
    lua_pushboolean(L, ln == "t");
    return true;
  case ',': {
    std::string d(ln);
    lua_newtable(L);
    lua_pushstring(L, "double");
    lua_pushnumber(L, std::strtod(d.c_str(), nullptr));
    lua_settable(L, -3);
    return true;
  }
  case '(':
    lua_newtable(L);
    lua_pushstring(L, "big_number");
    lua_pushlstring(L, ln.data(), ln.size());
    lua_settable(L, -3);
    return true;
  default:
    return false;
  }
}

// -- Lua -> RESP -----------------------------------------------------------------

void put_double(out_buffer& out, double d, int client_resp) {
  char buf[64];
  int n;
  if (std::isinf(d))
    n = std::snprintf(buf, sizeof buf, "%s", d > 0 ? "inf" : "-inf");
  else if (std::isnan(d))
    n = std::snprintf(buf, sizeof buf, "nan");
  else
    n = std::snprintf(buf, sizeof buf, "%.17g", d);
  std::string_view v(buf, static_cast<size_t>(n));
  if (client_resp == 3) {
    out.push_back(',');
    put_raw(out, v);
    put_raw(out, "\r\n");
  } else {
    put_bulk(out, v);
  }
}

/// The string field `name` of the table on top, or false.
bool string_field(lua_State* L, const char* name, std::string& out) {
  lua_pushstring(L, name);
  lua_rawget(L, -2);
  bool ok = lua_type(L, -1) == LUA_TSTRING;
  if (ok) {
    size_t n = 0;
    const char* p = lua_tolstring(L, -1, &n);
    out.assign(p, n);
  }
  lua_pop(L, 1);
  return ok;
}

void table_to_resp(lua_State* L, int script_resp, int client_resp, out_buffer& out, int depth);

void value_to_resp(lua_State* L, int script_resp, int client_resp, out_buffer& out, int depth) {
  switch (lua_type(L, -1)) {
  case LUA_TSTRING: {
    size_t n = 0;
    const char* p = lua_tolstring(L, -1, &n);
    put_bulk(out, std::string_view(p, n));
    break;
  }
  case LUA_TBOOLEAN:
    if (script_resp == 2) {
      if (lua_toboolean(L, -1))
        put_int(out, 1);
      else
        put_nil(out);
    } else if (client_resp == 3) {
      put_raw(out, lua_toboolean(L, -1) ? "#t\r\n" : "#f\r\n");
    } else {
      put_int(out, lua_toboolean(L, -1) ? 1 : 0);
    }
    break;
  case LUA_TNUMBER:
    put_int(out, static_cast<int64_t>(lua_tonumber(L, -1)));
    break;
  case LUA_TTABLE:
    if (depth > 100 || !lua_checkstack(L, 4))
      put_error(out, "ERR reached lua stack limit");
    else
      table_to_resp(L, script_resp, client_resp, out, depth);
    break;
  default:
    put_nil(out);
  }
  lua_pop(L, 1);
}

void table_to_resp(lua_State* L, int script_resp, int client_resp, out_buffer& out, int depth) {
  std::string s;
  if (string_field(L, "err", s)) {
    put_error(out, s);
    return;
  }
  if (string_field(L, "ok", s)) {
    for (auto& ch : s)
      if (ch == '\r' || ch == '\n')
        ch = ' ';
    put_status(out, s);
    return;
  }
  lua_pushstring(L, "double");
  lua_rawget(L, -2);
  if (lua_type(L, -1) == LUA_TNUMBER) {
    put_double(out, lua_tonumber(L, -1), client_resp);
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  if (string_field(L, "big_number", s)) {
    for (auto& ch : s)
      if (ch == '\r' || ch == '\n')
        ch = ' ';
    if (client_resp == 3) {
      out.push_back('(');
      put_raw(out, s);
      put_raw(out, "\r\n");
    } else {
      put_bulk(out, s);
    }
    return;
  }
  lua_pushstring(L, "verbatim_string");
  lua_rawget(L, -2);
  if (lua_type(L, -1) == LUA_TTABLE) {
    std::string fmt, str;
    if (string_field(L, "format", fmt) && string_field(L, "string", str)) {
      lua_pop(L, 1);
      if (client_resp == 3) {
        out.push_back('=');
        put_int_raw(out, static_cast<int64_t>(str.size() + 4));
        put_raw(out, "\r\n");
        fmt.resize(3, ' ');
        put_raw(out, fmt);
        put_raw(out, ":");
        put_raw(out, str);
        put_raw(out, "\r\n");
      } else {
        put_bulk(out, str);
      }
      return;
    }
  }
  lua_pop(L, 1);
  for (const char* kind : {"map", "set"}) {
    lua_pushstring(L, kind);
    lua_rawget(L, -2);
    if (lua_type(L, -1) != LUA_TTABLE) {
      lua_pop(L, 1);
      continue;
    }
    bool map = kind[0] == 'm';
    out_buffer body;
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) { // table, key, value
      if (map) {
        lua_pushvalue(L, -2);
        value_to_resp(L, script_resp, client_resp, body, depth + 1); // the key
        value_to_resp(L, script_resp, client_resp, body, depth + 1); // the value
      } else {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        value_to_resp(L, script_resp, client_resp, body, depth + 1);
      }
      ++count;
    }
    lua_pop(L, 1);
    if (map)
      put_map_header(out, count, client_resp);
    else
      put_set_header(out, count, client_resp);
    out.insert(out.end(), body.begin(), body.end());
    return;
  }
  // an array: elements 1..n up to the first nil
  out_buffer body;
  size_t count = 0;
  for (int i = 1;; ++i) {
    lua_pushnumber(L, i);
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TNIL) {
      lua_pop(L, 1);
      break;
    }
    value_to_resp(L, script_resp, client_resp, body, depth + 1);
    ++count;
  }
  put_array_header(out, count);
  out.insert(out.end(), body.begin(), body.end());
}

// -- the `redis` table -----------------------------------------------------------

/// Collects the arguments of a redis.* call; "" or the error message.
const char* collect_args(lua_State* L, std::vector<std::string>& out) {
  int argc = lua_gettop(L);
  if (argc == 0)
    return "Please specify at least one argument for this redis lib call";
  for (int i = 1; i <= argc; ++i) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      char buf[64];
      int n = std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(lua_tonumber(L, i)));
      out.emplace_back(buf, static_cast<size_t>(n));
    } else if (lua_type(L, i) == LUA_TSTRING) {
      size_t n = 0;
      const char* p = lua_tolstring(L, i, &n);
      out.emplace_back(p, n);
    } else {
      return "Lua redis lib command arguments must be strings or integers";
    }
  }
  return nullptr;
}

/// redis.call / redis.pcall without raising: pushes the reply (or an error
/// table); returns true when the pushed value is an error table.
bool generic_call(lua_State* L) {
  auto* e = engine_of(L);
  if (!e || !e->host()) {
    push_error_table(L, "redis.call/pcall can only be called inside a script invocation");
    return true;
  }
  std::vector<std::string> args;
  if (const char* err = collect_args(L, args)) {
    lua_settop(L, 0);
    push_error_table(L, err);
    return true;
  }
  lua_settop(L, 0);
  std::vector<std::string_view> views(args.begin(), args.end());
  out_buffer reply;
  std::string refused;
  try {
    refused = e->host()->call(views, e->script_resp, reply);
  } catch (const std::exception& ex) {
    refused = std::string("ERR internal error: ") + ex.what();
  }
  if (!refused.empty()) {
    push_error_table(L, "-" + refused);
    return true;
  }
  resp_reader r{std::string_view(reply.data(), reply.size())};
  if (!push_reply(L, r, 0)) {
    push_error_table(L, "ERR the command's reply could not be converted");
    return true;
  }
  return lua_type(L, -1) == LUA_TTABLE && !reply.empty() && reply[0] == '-';
}

int l_call(lua_State* L) {
  if (generic_call(L))
    return lua_error(L);
  return 1;
}

int l_pcall_cmd(lua_State* L) {
  generic_call(L);
  return 1;
}

/// pcall as Redis 7 replaces it: an error table becomes its message.
int l_pcall(lua_State* L) {
  int argc = lua_gettop(L);
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  if (lua_pcall(L, argc - 1, LUA_MULTRET, 0) != 0) {
    lua_remove(L, 1);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "err");
      if (lua_isstring(L, -1))
        lua_replace(L, -2);
      else
        lua_pop(L, 1);
    }
    lua_pushboolean(L, 0);
    lua_insert(L, 1);
  }
  return lua_gettop(L);
}

int raise(lua_State* L, const char* msg) {
  push_error_table(L, msg);
  return lua_error(L);
}

int l_sha1hex(lua_State* L) {
  if (lua_gettop(L) != 1)
    return raise(L, "wrong number of arguments");
  size_t n = 0;
  const char* p = lua_tolstring(L, 1, &n);
  char hex[41];
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(p ? p : ""), p ? n : 0, md);
  for (int i = 0; i < SHA_DIGEST_LENGTH; ++i)
    std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
  lua_pushlstring(L, hex, 40);
  return 1;
}

int l_error_reply(lua_State* L) {
  if (lua_gettop(L) != 1 || lua_type(L, -1) != LUA_TSTRING) {
    push_error_table(L, "wrong number or type of arguments");
    return 1;
  }
  size_t n = 0;
  const char* p = lua_tolstring(L, 1, &n);
  std::string e = (n > 0 && p[0] == '-') ? std::string(p, n) : "-" + std::string(p, n);
  push_error_table(L, e);
  return 1;
}

int l_status_reply(lua_State* L) {
  if (lua_gettop(L) != 1 || lua_type(L, -1) != LUA_TSTRING) {
    push_error_table(L, "wrong number or type of arguments");
    return 1;
  }
  lua_newtable(L);
  lua_pushstring(L, "ok");
  lua_pushvalue(L, 1);
  lua_settable(L, -3);
  return 1;
}

/// Builds redis.log's message; nullptr or the error.
const char* log_message(lua_State* L, int& level, std::string& msg) {
  int argc = lua_gettop(L);
  if (argc < 2)
    return "redis.log() requires two arguments or more.";
  if (!lua_isnumber(L, 1))
    return "First argument must be a number (log level).";
  level = static_cast<int>(lua_tonumber(L, 1));
  if (level < 0 || level > 3)
    return "Invalid debug level.";
  for (int i = 2; i <= argc; ++i) {
    size_t n = 0;
    const char* p = lua_tolstring(L, i, &n);
    if (!p)
      continue;
    if (i > 2)
      msg += ' ';
    msg.append(p, n);
  }
  return nullptr;
}

int l_log(lua_State* L) {
  const char* err = nullptr;
  {
    int level = 0;
    std::string msg;
    err = log_message(L, level, msg);
    auto* e = engine_of(L);
    if (!err && e && e->host())
      e->host()->log(level, msg);
  }
  if (err)
    return raise(L, err);
  return 0;
}

int l_setresp(lua_State* L) {
  auto* e = engine_of(L);
  if (!e || !e->host())
    return raise(L, "redis.setresp can only be called inside a script invocation");
  if (lua_gettop(L) != 1)
    return raise(L, "redis.setresp() requires one argument.");
  int v = static_cast<int>(lua_tonumber(L, 1));
  if (v != 2 && v != 3)
    return raise(L, "RESP version must be 2 or 3.");
  e->script_resp = v;
  return 0;
}

/// redis.set_repl: kura has no replication stream for scripts' effects to
/// reach, so only the argument is checked.
int l_set_repl(lua_State* L) {
  auto* e = engine_of(L);
  if (!e || !e->host())
    return raise(L, "redis.set_repl can only be called inside a script invocation");
  if (lua_gettop(L) != 1)
    return raise(L, "redis.set_repl() requires two arguments.");
  int flags = static_cast<int>(lua_tonumber(L, 1));
  if ((flags & ~3) != 0)
    return raise(L,
                 "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.");
  return 0;
}

int l_replicate_commands(lua_State* L) {
  lua_pushboolean(L, 1); // effects replication is the only mode since Redis 7
  return 1;
}

/// redis.acl_check_cmd without raising: pushes the boolean or returns the error.
const char* acl_check(lua_State* L) {
  auto* e = engine_of(L);
  if (!e || !e->host())
    return "redis.acl_check_cmd can only be called inside a script invocation";
  std::vector<std::string> args;
  if (const char* err = collect_args(L, args))
    return err;
  std::vector<std::string_view> views(args.begin(), args.end());
  int r = -1;
  try {
    r = e->host()->acl_check(views);
  } catch (const std::exception&) {
    r = -1;
  }
  if (r < 0)
    return "Invalid command passed to redis.acl_check_cmd()";
  lua_pushboolean(L, r);
  return nullptr;
}

int l_acl_check_cmd(lua_State* L) {
  if (const char* err = acl_check(L))
    return raise(L, err);
  return 1;
}

/// _G's __index: reading a missing global is an error, as in Redis.
int l_global_index(lua_State* L) {
  const char* name = lua_tostring(L, 2);
  return luaL_error(L, "Script attempted to access nonexistent global variable '%s'",
                    name ? name : "?");
}

/// __newindex of protected tables (_G, redis): scripts may not change them.
int l_readonly(lua_State* L) {
  return luaL_error(L, "Attempt to modify a readonly table");
}

void hook(lua_State* L, lua_Debug*) {
  auto* e = engine_of(L);
  bool kill = false;
  if (e && e->host()) {
    try {
      kill = e->host()->interrupt();
    } catch (const std::exception&) {
      kill = false;
    }
  }
  if (!kill)
    return;
  // from now on every line raises again, so pcall cannot swallow the kill
  e->start_kill_hook();
  push_error_table(L, "Script killed by user with SCRIPT KILL...");
  lua_error(L);
}

void kill_hook(lua_State* L, lua_Debug*) {
  push_error_table(L, "Script killed by user with SCRIPT KILL...");
  lua_error(L);
}

void set_number(lua_State* L, const char* name, lua_Number v) {
  lua_pushstring(L, name);
  lua_pushnumber(L, v);
  lua_rawset(L, -3);
}

void set_function(lua_State* L, const char* name, lua_CFunction f) {
  lua_pushstring(L, name);
  lua_pushcfunction(L, f);
  lua_rawset(L, -3);
}

const char* const error_handler_source = R"(
local dbg = debug
return function(err)
  local at = dbg.getinfo(2, 'nSl')
  if at and at.what == 'C' then
    at = dbg.getinfo(3, 'nSl')
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if at then
    err['source'] = at.source
    err['line'] = at.currentline
  end
  return err
end
)";

} // namespace

// -- the engine ------------------------------------------------------------------

lua_engine::lua_engine() {
  open();
}

lua_engine::~lua_engine() {
  close();
}

void lua_engine::open() {
  L_ = luaL_newstate();
  if (!L_)
    throw std::bad_alloc();
  auto* L = L_;
  for (auto [name, fn] : {std::pair<const char*, lua_CFunction>{"", luaopen_base},
                          {LUA_TABLIBNAME, luaopen_table},
                          {LUA_STRLIBNAME, luaopen_string},
                          {LUA_MATHLIBNAME, luaopen_math},
                          {LUA_DBLIBNAME, luaopen_debug}}) {
    lua_pushcfunction(L, fn);
    lua_pushstring(L, name);
    lua_call(L, 1, 0);
  }
  lua_pushlightuserdata(L, this);
  lua_setfield(L, LUA_REGISTRYINDEX, engine_key);
  // scripts read no files
  for (const char* name : {"dofile", "loadfile"}) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
  lua_pushcfunction(L, l_pcall);
  lua_setglobal(L, "pcall");

  // the `redis` table, behind a read-only proxy
  lua_newtable(L); // the real table
  set_function(L, "call", l_call);
  set_function(L, "pcall", l_pcall_cmd);
  set_function(L, "sha1hex", l_sha1hex);
  set_function(L, "error_reply", l_error_reply);
  set_function(L, "status_reply", l_status_reply);
  set_function(L, "log", l_log);
  set_function(L, "setresp", l_setresp);
  set_function(L, "set_repl", l_set_repl);
  set_function(L, "replicate_commands", l_replicate_commands);
  set_function(L, "acl_check_cmd", l_acl_check_cmd);
  set_number(L, "LOG_DEBUG", 0);
  set_number(L, "LOG_VERBOSE", 1);
  set_number(L, "LOG_NOTICE", 2);
  set_number(L, "LOG_WARNING", 3);
  set_number(L, "REPL_NONE", 0);
  set_number(L, "REPL_AOF", 1);
  set_number(L, "REPL_SLAVE", 2);
  set_number(L, "REPL_REPLICA", 2);
  set_number(L, "REPL_ALL", 3);
  set_number(L, "REDIS_VERSION_NUM", (7 << 16) | (0 << 8) | 15);
  lua_pushstring(L, "REDIS_VERSION");
  lua_pushstring(L, "7.0.15");
  lua_rawset(L, -3);
  lua_newtable(L); // the proxy
  lua_newtable(L); // its metatable
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_readonly);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_setglobal(L, "redis");
  lua_pop(L, 1);

  // the error handler (it keeps `debug` as an upvalue; scripts lose it)
  if (luaL_loadbuffer(L, error_handler_source, std::strlen(error_handler_source),
                      "@err_handler_def") != 0 ||
      lua_pcall(L, 0, 1, 0) != 0)
    throw std::runtime_error("lua: cannot define the error handler");
  lua_setfield(L, LUA_REGISTRYINDEX, handler_key);
  lua_pushnil(L);
  lua_setglobal(L, "debug");

  // globals: no new ones, no reads of missing ones
  lua_pushvalue(L, LUA_GLOBALSINDEX);
  lua_newtable(L);
  lua_pushcfunction(L, l_global_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_readonly);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

void lua_engine::close() {
  if (L_)
    lua_close(L_);
  L_ = nullptr;
}

void lua_engine::flush() {
  close();
  cache_.clear();
  cache_bytes_ = 0;
  open();
}

uint64_t lua_engine::memory() const {
  return static_cast<uint64_t>(lua_gc(L_, LUA_GCCOUNT, 0)) * 1024u +
         static_cast<uint64_t>(lua_gc(L_, LUA_GCCOUNTB, 0));
}

std::string lua_engine::sha1hex(std::string_view s) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  static const char hex[] = "0123456789abcdef";
  std::string r(40, '0');
  for (int i = 0; i < SHA_DIGEST_LENGTH; ++i) {
    r[static_cast<size_t>(2 * i)] = hex[md[i] >> 4];
    r[static_cast<size_t>(2 * i + 1)] = hex[md[i] & 15];
  }
  return r;
}

std::string lua_engine::shebang_flags(std::string_view body, uint32_t& flags, size_t& shebang_len) {
  flags = script_flag::eval_compat;
  shebang_len = 0;
  if (body.substr(0, 2) != "#!")
    return {};
  auto nl = body.find('\n');
  if (nl == std::string_view::npos)
    return "Invalid script shebang";
  shebang_len = nl;
  std::vector<std::string_view> parts;
  auto line = body.substr(0, nl);
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i])))
      ++i;
    size_t j = i;
    while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j])))
      ++j;
    if (j > i)
      parts.push_back(line.substr(i, j - i));
    i = j;
  }
  if (parts.empty())
    return "Invalid engine in script shebang";
  if (parts[0] != "#!lua")
    return "Unexpected engine in script shebang: " + std::string(parts[0]);
  flags = 0;
  for (size_t p = 1; p < parts.size(); ++p) {
    if (parts[p].substr(0, 6) != "flags=")
      return "Unknown lua shebang option: " + std::string(parts[p]);
    auto list = parts[p].substr(6);
    size_t a = 0;
    while (a <= list.size()) {
      auto b = list.find(',', a);
      if (b == std::string_view::npos)
        b = list.size();
      auto f = list.substr(a, b - a);
      if (f == "no-writes")
        flags |= script_flag::no_writes;
      else if (f == "allow-oom")
        flags |= script_flag::allow_oom;
      else if (f == "allow-stale")
        flags |= script_flag::allow_stale;
      else if (f == "no-cluster")
        flags |= script_flag::no_cluster;
      else if (f == "allow-cross-slot-keys")
        flags |= script_flag::allow_cross_slot_keys;
      else if (!(f.empty() && list.empty()))
        return "Unexpected flag in script shebang: " + std::string(f);
      a = b + 1;
    }
  }
  return {};
}

std::string lua_engine::load(std::string_view body, std::string& err) {
  std::string sha = sha1hex(body);
  if (cache_.count(sha))
    return sha;
  uint32_t flags = 0;
  size_t skip = 0;
  err = shebang_flags(body, flags, skip);
  if (!err.empty())
    return {};
  // the shebang line is skipped, its line feed kept (line numbers stay right)
  if (luaL_loadbuffer(L_, body.data() + skip, body.size() - skip, "@user_script") != 0) {
    const char* m = lua_tostring(L_, -1);
    err = std::string("Error compiling script (new function): ") + (m ? m : "?");
    lua_pop(L_, 1);
    return {};
  }
  lua_setfield(L_, LUA_REGISTRYINDEX, ("f_" + sha).c_str());
  cache_bytes_ += body.size() + sha.size();
  cache_.emplace(sha, script{std::string(body), flags});
  return sha;
}

const lua_engine::script* lua_engine::find(std::string_view sha) const {
  if (sha.size() != 40)
    return nullptr;
  std::string lower(sha);
  for (auto& ch : lower)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto i = cache_.find(lower);
  return i == cache_.end() ? nullptr : &i->second;
}

void lua_engine::start_kill_hook() {
  lua_sethook(L_, kill_hook, LUA_MASKLINE, 0);
}

namespace {

void set_array_global(lua_State* L, const char* name, const std::vector<std::string_view>& v) {
  lua_pushstring(L, name);
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    lua_pushlstring(L, v[i].data(), v[i].size());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  lua_rawset(L, LUA_GLOBALSINDEX);
}

} // namespace

void lua_engine::run(std::string_view sha, const std::vector<std::string_view>& keys,
                     const std::vector<std::string_view>& argv, int client_resp, lua_host& host,
                     out_buffer& out) {
  std::string lower(sha);
  for (auto& ch : lower)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  funcname = "f_" + lower;
  auto* L = L_;
  lua_getfield(L, LUA_REGISTRYINDEX, handler_key);
  lua_getfield(L, LUA_REGISTRYINDEX, funcname.c_str());
  if (lua_isnil(L, -1)) {
    lua_pop(L, 2);
    put_error(out, "NOSCRIPT No matching script. Please use EVAL.");
    return;
  }
  if (!lua_checkstack(L, 64)) {
    lua_pop(L, 2);
    put_error(out, "ERR reached lua stack limit");
    return;
  }
  set_array_global(L, "KEYS", keys);
  set_array_global(L, "ARGV", argv);
  host_ = &host;
  script_resp = 2;
  lua_sethook(L, hook, LUA_MASKCOUNT, hook_instructions);
  int err = lua_pcall(L, 0, 1, -2);
  lua_sethook(L, nullptr, 0, 0);
  if (err) {
    if (lua_istable(L, -1)) {
      std::string msg, source, line;
      string_field(L, "err", msg);
      string_field(L, "source", source);
      lua_pushstring(L, "line");
      lua_rawget(L, -2);
      if (lua_isnumber(L, -1) || lua_isstring(L, -1)) {
        const char* p = lua_tostring(L, -1);
        line = p ? p : "";
      }
      lua_pop(L, 1);
      if (!line.empty() && !source.empty())
        msg += " script: " + funcname + ", on " + source + ":" + line + ".";
      put_error(out, msg);
    } else {
      const char* m = lua_tostring(L, -1);
      put_error(out, "ERR Error running script " + funcname + ", " +
                         std::string(m ? m : "execution failure").substr(0, 100));
    }
    lua_pop(L, 1);
  } else {
    lua_to_resp(L, script_resp, client_resp, out);
  }
  lua_pop(L, 1); // the error handler
  host_ = nullptr;
  lua_gc(L, LUA_GCSTEP, 1);
}

void lua_to_resp(lua_State* L, int script_resp, int client_resp, out_buffer& out) {
  value_to_resp(L, script_resp, client_resp, out, 0);
}

bool resp_to_lua(lua_State* L, std::string_view reply) {
  resp_reader r{reply};
  int top = lua_gettop(L);
  if (push_reply(L, r, 0) && r.pos == reply.size())
    return true;
  lua_settop(L, top);
  return false;
}

} // namespace kura::node
