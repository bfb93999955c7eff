module CcRelay.Core.Tests.RequestFactsTests
