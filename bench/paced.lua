-- wrk script for bench/http.sh's paced mode: each connection waits 1 ms after an answer before
-- its next request, so the offered load is the same whatever the proxy.
function delay()
  return 1
end
