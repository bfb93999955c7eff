module CcRelay.Core.Properties.Generators
