module CcRelay.Core.Tests.OutcomeTests
