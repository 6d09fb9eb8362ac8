--- resty.walrouter.auth: password authentication for the PostgreSQL
-- protocol: SCRAM-SHA-256 (RFC 5802 / RFC 7677, no channel binding) and
-- md5, with libcrypto through FFI. Passwords are used as given (no SASLprep;
-- ASCII passwords are unaffected). Nothing here logs or returns a password.
local ffi = require "ffi"
local ffi_mod = require "resty.walrouter.ffi"
local bit = require "bit"

local C = ffi_mod.crypto()
local b64, unb64, md5 = ngx.encode_base64, ngx.decode_base64, ngx.md5
local byte, char, sub, gsub = string.byte, string.char, string.sub, string.gsub

local M = {}

function M.md5_response(user, password, salt)
  return "md5" .. md5(md5(password .. user) .. salt)
end

local function hmac(key, data)
  local out = ffi.new("unsigned char[32]")
  local len = ffi.new("unsigned int[1]")
  if C.HMAC(C.EVP_sha256(), key, #key, data, #data, out, len) == nil then
    error("HMAC-SHA256 failed")
  end
  return ffi.string(out, 32)
end

local function sha256(data)
  local out = ffi.new("unsigned char[32]")
  if C.EVP_Digest(data, #data, out, nil, C.EVP_sha256(), nil) ~= 1 then error("SHA-256 failed") end
  return ffi.string(out, 32)
end

local function pbkdf2(password, salt, iter)
  local out = ffi.new("unsigned char[32]")
  if C.PKCS5_PBKDF2_HMAC(password, #password, salt, #salt, iter, C.EVP_sha256(), 32, out) ~= 1 then
    error("PBKDF2 failed")
  end
  return ffi.string(out, 32)
end

local function xor(a, b)
  local t = {}
  for i = 1, #a do t[i] = char(bit.bxor(byte(a, i), byte(b, i))) end
  return table.concat(t)
end

local function nonce()
  local buf = ffi.new("unsigned char[18]")
  if C.RAND_bytes(buf, 18) ~= 1 then error("RAND_bytes failed") end
  return b64(ffi.string(buf, 18))
end

-- SaltedPassword and the keys derived from it, per password, salt and
-- iteration count: PBKDF2 (4096 rounds by default) blocks the worker, so
-- a worker runs it once per role, not once per connection.
local keys_cache = {}

local function keys_for(password, salt, iter)
  local k = password .. "\0" .. salt .. "\0" .. iter
  local hit = keys_cache[k]
  if hit then return hit end
  local salted = pbkdf2(password, salt, iter)
  local client_key = hmac(salted, "Client Key")
  hit = { client_key = client_key, stored_key = sha256(client_key), server_key = hmac(salted, "Server Key") }
  keys_cache[k] = hit
  return hit
end

local Scram = {}
Scram.__index = Scram

-- user and cnonce are for test vectors only: PostgreSQL takes the user
-- name from the startup message, and the nonce is random.
function M.scram_new(password, user, cnonce)
  return setmetatable({ password = password, user = user or "", cnonce = cnonce }, Scram)
end

-- "n,,n=,r=<nonce>".
function Scram:client_first()
  self.cnonce = self.cnonce or nonce()
  self.first_bare = "n=" .. self.user .. ",r=" .. self.cnonce
  return "n,," .. self.first_bare
end

local function attrs(s)
  local t = {}
  for k, v in s:gmatch("(%a)=([^,]*)") do t[k] = v end
  return t
end

function Scram:client_final(server_first)
  local a = attrs(server_first)
  local r, s, i = a.r, a.s and unb64(a.s), tonumber(a.i)
  if not r or not s or not i or sub(r, 1, #self.cnonce) ~= self.cnonce or i < 1 then
    return nil, "SCRAM: malformed server-first-message"
  end
  local keys = keys_for(self.password, s, i)
  local without_proof = "c=biws,r=" .. r
  local auth_message = self.first_bare .. "," .. server_first .. "," .. without_proof
  local proof = xor(keys.client_key, hmac(keys.stored_key, auth_message))
  self.server_signature = b64(hmac(keys.server_key, auth_message))
  return without_proof .. ",p=" .. b64(proof)
end

function Scram:verify(server_final)
  local a = attrs(server_final)
  if a.e then return nil, "SCRAM: server error " .. a.e end
  if not a.v or gsub(a.v, "%s", "") ~= self.server_signature then
    return nil, "SCRAM: the server's signature does not match (not the genuine server)"
  end
  return true
end

return M
