-- Unit checks run inside nginx (GET /unit): the SCRAM-SHA-256 test vector of
-- RFC 7677, DSN parsing, parameter text. Answers "ok N" or the first failure.
local M = {}

function M.run()
  local n, failures = 0, {}
  local function eq(got, want, what)
    n = n + 1
    if got ~= want then failures[#failures + 1] = ("%s: got %s, want %s"):format(what, tostring(got), tostring(want)) end
  end
  -- RFC 7677, section 3.
  local auth = require "resty.walrouter.auth"
  local s = auth.scram_new("pencil", "user", "rOprNGfwEbeRWgbNEkqO")
  eq(s:client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "SCRAM client-first")
  eq(s:client_final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
     "SCRAM client-final")
  eq(s:verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), true, "SCRAM server signature")
  eq(s:verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), nil, "SCRAM forged server signature")
  eq(select(2, s:client_final("r=someone-elses-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")) ~= nil, true,
     "SCRAM refuses a server nonce that does not extend the client's")
  -- DSNs.
  local dsn = require "resty.walrouter.dsn"
  local d = assert(dsn.parse("postgresql://u%40x:p%3Aw@db1:5433,DB2,[::1]:6000/app?connect_timeout=3"))
  eq(d.user, "u@x", "URI user")
  eq(d.password, "p:w", "URI password")
  eq(d.database, "app", "URI database")
  eq(#d.nodes, 3, "URI hosts")
  eq(d.nodes[1].name, "db1:5433", "URI node name")
  eq(d.nodes[2].name, "DB2:5432", "URI default port")
  eq(d.nodes[3].host, "::1", "URI IPv6 host")
  eq(d.connect_timeout_s, 3, "URI connect_timeout")
  d = assert(dsn.parse("host=h1,h2 port=5432,5433 user=u password='p w' dbname=db"))
  eq(d.nodes[2].name, "h2:5433", "conninfo node name")
  eq(d.password, "p w", "conninfo quoted password")
  eq(dsn.parse(""), nil, "empty DSN")
  -- Parameters as text.
  local pg = require "resty.walrouter.pg"
  eq(pg.param_text(42), "42", "integer parameter")
  eq(pg.param_text(1.5), "1.5", "float parameter")
  eq(pg.param_text(0.1), "0.10000000000000001", "float parameter, exactly")
  eq(pg.param_text(true), "true", "boolean parameter")
  eq(pg.param_text(ngx.null), nil, "NULL parameter")
  if #failures > 0 then return "FAIL " .. table.concat(failures, "; ") end
  return "ok " .. n
end

return M
