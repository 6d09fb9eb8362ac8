-- Bad input through the Lua module: text holding a zero byte (a DSN, an
-- option value, a token) is a clear error, never cut short; options past
-- their limits are refused naming the option; a password that is part of
-- the mask, or quoted by libpq's DSN parse error, never hangs or shows; a
-- token signed for another cluster is refused.
local walrouter = require "walrouter"
local H = require "wr_helper"

describe("walrouter (bad input)", function()
  local cluster

  setup(function()
    cluster = assert(walrouter.connect(H.dsn))
  end)

  teardown(function()
    if cluster then cluster:close() end
  end)

  it("refuses a DSN holding a zero byte (its port= would be cut off)", function()
    H.raises("zero byte", walrouter.connect, H.dsn .. "\0?port=1")
    H.raises("zero byte", walrouter.connect, "host=127.0.0.1\0 port=1")
  end)

  it("refuses a token_key holding a zero byte (it would act as its prefix)", function()
    H.raises("token_key", walrouter.connect, H.dsn, { token_key = "abc\0def" })
  end)

  it("returns bad_token for a token followed by a zero byte and garbage", function()
    local w = cluster:session()
    assert(w:exec("SELECT 1"))
    local token = w:token()
    assert(cluster:session(token)) -- the token itself is good
    local s, err = cluster:session(token .. "\0garbage")
    assert.is_nil(s)
    assert.are.equal("bad_token", err.code)
    local ok, err2 = w:resume(token .. "\0")
    assert.is_nil(ok)
    assert.are.equal("bad_token", err2.code)
    ok, err2 = w:require(token .. "\0x")
    assert.is_nil(ok)
    assert.are.equal("bad_token", err2.code)
    w:close()
  end)

  it("refuses options past their limits, naming the option", function()
    H.raises("pool_size", walrouter.connect, H.dsn, { pool_size = 2147483648 })
    H.raises("stmt_cache_size", walrouter.connect, H.dsn, { stmt_cache_size = 4294967295 })
    H.raises("connect_timeout_s", walrouter.connect, H.dsn, { connect_timeout_s = 2147483648 })
    H.raises("pool_max", walrouter.connect, H.dsn, { pool_max = "99999" })
  end)

  it("returns at once, without the password, when the password is part of the mask", function()
    local c, err = walrouter.connect(
      "host=no*such*host.invalid hostaddr=127.0.0.1 port=1 user=u password=* dbname=d", { connect_timeout_s = 1 })
    assert.is_nil(c)
    assert.are.equal("connect_error", err.code)
  end)

  it("never shows the password that libpq's DSN parse error quotes", function()
    for _, dsn in ipairs({ "postgresql://u:50%off-SECRET@h/db", "postgresql://h/db?password=50%zzSECRET" }) do
      local c, err = walrouter.connect(dsn)
      assert.is_nil(c)
      assert.are.equal("bad_argument", err.code)
      assert.truthy(err.message:find("invalid DSN", 1, true))
      assert.falsy(err.message:find("SECRET", 1, true))
    end
  end)

  it("refuses a token signed for another cluster (another key)", function()
    local a = assert(walrouter.connect(H.dsn, { token_key = "key of cluster a" }))
    local b = assert(walrouter.connect(H.dsn, { token_key = "key of cluster b" }))
    local w = a:session()
    assert(w:exec("SELECT 1"))
    local s, err = b:session(w:token())
    assert.is_nil(s)
    assert.are.equal("bad_token", err.code)
    assert(a:session(w:token()))
    a:close()
    b:close()
  end)
end)
