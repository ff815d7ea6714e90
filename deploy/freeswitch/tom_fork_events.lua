-- Event hook for TOM's fork modules (lua.conf.xml):
--   <hook event="CUSTOM" subclass="mod_audio_fork::play_audio" script="tom_fork_events.lua"/>
--   <hook event="CUSTOM" subclass="mod_audio_fork::disconnect" script="tom_fork_events.lua"/>
--   <hook event="CUSTOM" subclass="mod_audio_stream::play" script="tom_fork_events.lua"/>
--   <hook event="CUSTOM" subclass="mod_audio_stream::json" script="tom_fork_events.lua"/>
-- The modules write the agent's audio to a file and fire an event; playing it is ours.
-- killAudio is handled by mod_audio_fork itself (the channel's break flag).
local subclass = event:getHeader("Event-Subclass") or ""
local uuid = event:getHeader("Unique-ID")
local body = event:getBody() or ""
local api = freeswitch.API()

if subclass == "mod_audio_fork::play_audio" or subclass == "mod_audio_stream::play" then
  local file = string.match(body, '"file"%s*:%s*"([^"]+)"')
  if uuid and file then
    api:executeString("uuid_broadcast " .. uuid .. " " .. file .. " aleg")
  end
elseif subclass == "mod_audio_fork::disconnect" then
  -- TOM ended the call, or its socket dropped (the module uses one event for both).
  if uuid then api:executeString("uuid_kill " .. uuid) end
elseif subclass == "mod_audio_stream::json" then
  if uuid and string.find(body, '"type"%s*:%s*"killAudio"') then
    api:executeString("uuid_break " .. uuid .. " all")
  elseif uuid and string.find(body, '"type"%s*:%s*"disconnect"') then
    api:executeString("uuid_kill " .. uuid)
  end
end
