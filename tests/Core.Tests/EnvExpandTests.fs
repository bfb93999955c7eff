module CcRelay.Core.Tests.EnvExpandTests
