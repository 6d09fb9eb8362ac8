--- resty.walrouter.dsn: the cluster as one libpq multi-host URI
-- ("postgresql://user:pw@h1:5432,h2:5433/db") or key=value conninfo
-- ("host=h1,h2 port=5432,5433 user=u password=pw dbname=db").
-- Node names are "host:port", as the C library names them, so that node
-- identities (and so tokens) agree across languages.
local M = {}

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function hosts_of(hosts, ports, default_port)
  local list = {}
  for _, h in ipairs(hosts) do
    local host, port = h:match("^%[(.-)%]:?(%d*)$")
    if not host then host, port = h:match("^([^:]*):?(%d*)$") end
    if not host or host == "" then return nil, "bad host in DSN: " .. h end
    list[#list + 1] = { host = host, port = tonumber(port ~= "" and port or nil) }
  end
  for k, node in ipairs(list) do
    node.port = node.port or tonumber(ports[k] or ports[1] or default_port) or 5432
    node.name = node.host .. ":" .. node.port
  end
  return list
end

local function split(s, sep)
  local t = {}
  for part in (s .. sep):gmatch("(.-)" .. sep) do t[#t + 1] = part end
  return t
end

function M.parse(dsn)
  if type(dsn) ~= "string" or dsn == "" then return nil, "dsn: a string is required" end
  local out = {}
  local rest = dsn:match("^postgres[q]?[l]?://(.*)$")
  if rest then
    local query
    rest, query = rest:match("^([^?]*)%??(.*)$")
    local auth, hostpart = rest:match("^(.*)@([^@]*)$")
    if not auth then hostpart = rest end
    if auth then
      local u, p = auth:match("^([^:]*):(.*)$")
      out.user = unescape(u or auth)
      out.password = p and unescape(p) or nil
    end
    local hosts, db = hostpart:match("^([^/]*)/?(.*)$")
    out.database = db ~= "" and unescape(db) or nil
    out.nodes = select(1, hosts_of(split(hosts, ","), {}, 5432))
    for k, v in query:gmatch("([^&=]+)=([^&]*)") do
      k, v = unescape(k), unescape(v)
      if k == "user" then out.user = v
      elseif k == "password" then out.password = v
      elseif k == "dbname" then out.database = v
      elseif k == "connect_timeout" then out.connect_timeout_s = tonumber(v)
      end
    end
  else
    local kv, i = {}, 1
    while true do
      local k, ni = dsn:match("^%s*([%w_]+)%s*=%s*()", i)
      if not k then break end
      local v
      if dsn:sub(ni, ni) == "'" then -- quoted: \' and \\ escape
        local buf, j = {}, ni + 1
        while j <= #dsn and dsn:sub(j, j) ~= "'" do
          local ch = dsn:sub(j, j)
          if ch == "\\" then j = j + 1; ch = dsn:sub(j, j) end
          buf[#buf + 1] = ch
          j = j + 1
        end
        v, i = table.concat(buf), j + 1
      else
        v, i = dsn:match("^(%S*)()", ni)
      end
      kv[k] = v
    end
    if dsn:match("%S", i) then return nil, "dsn: cannot parse the conninfo string" end
    if not kv.host then return nil, "dsn: no host" end
    out.user, out.password, out.database = kv.user, kv.password, kv.dbname
    out.connect_timeout_s = tonumber(kv.connect_timeout)
    out.nodes = hosts_of(split(kv.host, ","), kv.port and split(kv.port, ",") or {}, 5432)
  end
  if not out.nodes or #out.nodes == 0 then return nil, "dsn: no host" end
  if #out.nodes > 32 then return nil, "dsn: more than 32 hosts" end
  out.user = out.user or os.getenv("PGUSER") or "postgres"
  out.database = out.database or out.user
  return out
end

return M
