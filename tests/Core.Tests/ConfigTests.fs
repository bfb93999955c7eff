module CcRelay.Core.Tests.ConfigTests
