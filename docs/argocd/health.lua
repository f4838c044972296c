-- Argo CD health check for sources.aepoperator.dev/CapillarySource.
--
-- The operator reports kstatus conditions: Ready summarises, Reconciling and
-- Stalled are "abnormal-true" (present and True only while they hold).
--   Stalled=True                  -> Degraded    (needs a change: spec, Secret or Adobe permissions)
--   Reconciling=True              -> Progressing (creating, updating, or retrying a transient failure)
--   Ready=True, spec.suspend      -> Suspended   (the dataflow exists and is disabled)
--   Ready=True                    -> Healthy
--   Ready=False (nothing else)    -> Degraded
--   being deleted: Progressing, or Degraded while the deletion is blocked (Stalled)
--   no status, or status older than the spec  -> Progressing
-- Tested against objects from real reconciles in test/deploy.
local hs = { status = "Progressing", message = "Waiting for the operator to reconcile" }

local function describe(c)
  if c.reason ~= nil and c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.message or c.reason or ""
end

local status = obj.status or {}
local ready, reconciling, stalled
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Reconciling" then
    reconciling = c
  elseif c.type == "Stalled" then
    stalled = c
  end
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  if stalled ~= nil and stalled.status == "True" then
    hs.status = "Degraded"
    hs.message = describe(stalled)
  else
    hs.message = "Being deleted: the operator is removing the Adobe objects"
  end
  return hs
end

if status.conditions == nil then
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

-- A verdict on an older generation says nothing about the current spec.
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil then
  if ready.status == "True" then
    hs.message = describe(ready)
    if obj.spec ~= nil and obj.spec.suspend == true then
      hs.status = "Suspended"
    else
      hs.status = "Healthy"
    end
    return hs
  elseif ready.status == "False" then
    hs.status = "Degraded"
    hs.message = describe(ready)
    return hs
  end
  hs.message = describe(ready)
end

return hs
