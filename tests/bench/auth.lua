-- wrk script for `make bench`: every request carries the Authorization
-- header given in BENCH_AUTH ("Bearer <whmgate key>" for the gateways,
-- "whm root:<token>" for the upstream itself). No request()/response()
-- callbacks, so wrk keeps sending its one pre-built request: the load
-- generator costs the same for every contender.
local auth = os.getenv("BENCH_AUTH")
if auth == nil or auth == "" then
  error("BENCH_AUTH is not set")
end
wrk.headers["Authorization"] = auth
