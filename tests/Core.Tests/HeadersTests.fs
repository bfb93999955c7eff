module CcRelay.Core.Tests.HeadersTests
