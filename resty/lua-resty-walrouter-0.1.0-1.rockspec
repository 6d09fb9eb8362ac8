-- LuaRocks package of resty.walrouter (OpenResty / nginx with lua-nginx-module).
-- Pure Lua; the engine is the native library libwalrouter_engine, built by
-- the project's CMake (cmake -S . -B build && cmake --build build --target
-- walrouter_engine && cmake --install build) and found by the dynamic loader,
-- or named by configure{ engine_lib = "/path/libwalrouter_engine.so" } or
-- $WALROUTER_ENGINE_LIB. `luarocks make resty/lua-resty-walrouter-0.1.0-1.rockspec`
-- from a source checkout.
rockspec_format = "3.0"
package = "lua-resty-walrouter"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/walrouter/walrouter.git",
  tag = "v0.1.0",
}
description = {
  summary = "PostgreSQL primary + streaming replicas as one database, for OpenResty",
  detailed = [[
Cosocket PostgreSQL client (extended protocol with pipelining, SCRAM-SHA-256
and md5) whose every routing decision comes from the walrouter engine through
LuaJIT FFI: reads go to a replica only when it has provably replayed what the
session must see (read-your-writes through a cookie token), node state is
shared by all nginx workers in a lua_shared_dict.
]],
  labels = { "postgresql", "openresty", "nginx", "replication" },
  license = "PostgreSQL",
}
dependencies = { "lua == 5.1" } -- LuaJIT
build = {
  type = "builtin",
  modules = {
    ["resty.walrouter"] = "resty/lib/resty/walrouter.lua",
    ["resty.walrouter.ffi"] = "resty/lib/resty/walrouter/ffi.lua",
    ["resty.walrouter.pg"] = "resty/lib/resty/walrouter/pg.lua",
    ["resty.walrouter.auth"] = "resty/lib/resty/walrouter/auth.lua",
    ["resty.walrouter.dsn"] = "resty/lib/resty/walrouter/dsn.lua",
    ["resty.walrouter.shared"] = "resty/lib/resty/walrouter/shared.lua",
  },
}
