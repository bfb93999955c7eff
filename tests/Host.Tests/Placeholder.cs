namespace CcRelay.Host.Tests;

internal static class Placeholder;
