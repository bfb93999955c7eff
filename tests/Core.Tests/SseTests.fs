module CcRelay.Core.Tests.SseTests
