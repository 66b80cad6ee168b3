-- Envoy maps gRPC FAILED_PRECONDITION (9) to HTTP 400; the public contract
-- (envoy/openapi.json, README "The public edge") says 412. The transcoded error body is {"code":9,...}, so look at it
-- only on 400 responses, which are rare and small.
function envoy_on_response(handle)
  if handle:headers():get(":status") ~= "400" then
    return
  end
  local body = handle:body()
  if body == nil then
    return
  end
  local text = body:getBytes(0, body:length())
  if string.find(text, '"code":9,', 1, true) == 1 or string.find(text, '{"code":9,', 1, true) then
    handle:headers():replace(":status", "412")
  end
end
