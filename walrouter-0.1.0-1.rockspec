-- LuaRocks package of the walrouter Lua module: `luarocks make` in a source
-- checkout builds libwalrouter and the C module with CMake and installs
-- walrouter.core into the tree's LIBDIR and walrouter.lua into its LUADIR.
-- Needs a C compiler, CMake >= 3.18, libpq and OpenSSL (libcrypto) headers.
rockspec_format = "3.0"
package = "walrouter"
version = "0.1.0-1"
source = {
  -- `luarocks make` builds the local checkout and does not fetch this.
  url = "git+https://github.com/walrouter/walrouter.git",
  tag = "v0.1.0",
}
description = {
  summary = "A PostgreSQL primary and its streaming replicas used as one database",
  detailed = [[
Writes go to the primary; a read goes to a replica only when that replica has
provably replayed (by WAL position) everything the session must see, else,
after a short bounded retry, to the primary. Read-your-writes, monotonic
reads, session tokens for cookies, transactions pinned to one node.
]],
  labels = { "postgresql", "database", "replication" },
  license = "PostgreSQL",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- Only checked for presence here; CMake finds their headers itself
-- (libpq-fe.h lives in include/postgresql/ on Debian, include/ elsewhere).
external_dependencies = {
  PQ = { library = "pq" },
  CRYPTO = { library = "crypto" },
}
-- CMake builds libwalrouter (static) and the C module; only the Lua module's
-- files are installed (LuaRocks copies them, the CMake install is skipped).
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    LUA_INCDIR = "$(LUA_INCDIR)",
    WALROUTER_LUA = "ON",
    WALROUTER_PYTHON = "OFF",
    WALROUTER_TESTS = "OFF",
  },
  install_pass = false,
  install = {
    lua = {
      ["walrouter"] = "lua/walrouter.lua",
      ["walrouter.format"] = "lua/walrouter/format.lua",
    },
    lib = {
      ["walrouter.core"] = "build.luarocks/lua/walrouter/core.so",
    },
  },
}
