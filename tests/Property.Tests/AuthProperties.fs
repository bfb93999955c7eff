module CcRelay.Core.Properties.AuthProperties
