module CcRelay.Core.Properties.SseProperties
