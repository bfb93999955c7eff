module CcRelay.Core.Tests.ModelsTests
