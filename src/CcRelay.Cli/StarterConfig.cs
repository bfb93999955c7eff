namespace CcRelay.Cli;

/// <summary>The commented starter configs that <c>cc-relay config init</c> writes (embedded from Templates/).</summary>
internal static class StarterConfig
{
    /// <summary>The starter for a format: <c>yaml</c> or <c>toml</c>.</summary>
    public static string For(string format)
    {
        var name = $"CcRelay.Cli.Templates.cc-relay.{format}";
        using var stream = typeof(StarterConfig).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the embedded template {name} is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
