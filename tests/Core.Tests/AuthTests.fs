module CcRelay.Core.Tests.AuthTests
