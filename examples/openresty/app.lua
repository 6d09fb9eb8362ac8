-- Handlers of the resty.walrouter example (examples/openresty/nginx.conf).
local walrouter = require "resty.walrouter"
local cjson = require "cjson.safe"

local M = {}

local function fail(status, err, code, sqlstate)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode{ error = err, code = code, sqlstate = sqlstate })
  return ngx.exit(status)
end

-- The session resumes from the cookie, and hands its token back in it.
local function session()
  local db, err, code = walrouter.new{ cluster = "main", token = ngx.var.cookie_wr }
  if not db then -- a bad or foreign cookie: start afresh
    db, err, code = walrouter.new{ cluster = "main" }
    if not db then return fail(500, err, code) end
  end
  return db
end

local function save_token(db)
  ngx.header["Set-Cookie"] = "wr=" .. db:token() .. "; Path=/; HttpOnly; SameSite=Lax"
end

local ready = false
local function ensure_table(db)
  if ready then return true end
  local ok, err, code, sqlstate = db:exec("CREATE TABLE IF NOT EXISTS items (id bigserial PRIMARY KEY, body text)")
  if not ok then return fail(500, err, code, sqlstate) end
  ready = true
end

function M.items()
  local db = session()
  ensure_table(db)
  if ngx.req.get_method() == "POST" then
    ngx.req.read_body()
    local rows, err, code, sqlstate = db:exec("INSERT INTO items (body) VALUES ($1) RETURNING id",
                                              ngx.req.get_body_data() or "")
    if not rows then return fail(500, err, code, sqlstate) end
    save_token(db)
    ngx.status = 201
    ngx.say(cjson.encode{ id = rows[1].id, node = rows.node })
    return
  end
  local rows, err, code, sqlstate = db:query("SELECT id, body FROM items ORDER BY id DESC LIMIT 20")
  if not rows then return fail(500, err, code, sqlstate) end
  save_token(db)
  ngx.header["Content-Type"] = "application/json"
  local items = {}
  for i, r in ipairs(rows) do items[i] = { id = r.id, body = r.body } end
  ngx.say(cjson.encode{ items = items, node = rows.node, reason = rows.reason })
end

function M.status()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(walrouter.status_json("main"))
end

function M.metrics()
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(walrouter.metrics("main"))
end

return M
