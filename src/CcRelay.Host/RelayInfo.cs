namespace CcRelay.Host;

/// <summary>Facts about this build of the relay.</summary>
public static class RelayInfo
{
    /// <summary>The informational version of the host assembly.</summary>
    public static string Version { get; } =
        typeof(RelayInfo).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";
}
