using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Host.Tests.Configuration;

/// <summary>examples/config.yaml: it covers the schema and loads as it is.</summary>
public sealed class ExampleConfigTests
{
    private static readonly string[] AcceptedNotEffective = ["cache"];

    /// <summary>Finds examples/config.yaml by walking up from the test binaries to the repository root.</summary>
    private static string ExamplePath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "examples", "config.yaml");
            if (File.Exists(candidate) && File.Exists(Path.Combine(dir.FullName, "CcRelay.sln")))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("examples/config.yaml not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void Example_WithoutEnvironment_Loads_WarningOnlyAboutUnsetKeysAndSectionsNotEffectiveYet()
    {
        // Act
        var load = ConfigFile.Load(ExamplePath(), _ => null);

        // Assert
        var loaded = Assert.IsType<ConfigLoad.Loaded>(load);
        Assert.All(loaded.Warnings, warning => Assert.True(
            warning.Message.Contains("is not set", StringComparison.Ordinal)
            || warning.Message == "accepted but not effective in this version",
            warning.ToString()));
        Assert.Equal(["anthropic"], loaded.Config.Providers.Where(p => p.Enabled).Select(p => p.Name));
    }

    [Fact]
    public void Example_WithEveryVariable_Loads_EveryProviderType_WithItsKeys()
    {
        // Act
        var load = ConfigFile.Load(ExamplePath(), name => name.EndsWith("_API_KEY", StringComparison.Ordinal) || name.EndsWith("_API_KEY_2", StringComparison.Ordinal) ? "key-of-" + name : null);

        // Assert
        var loaded = Assert.IsType<ConfigLoad.Loaded>(load);
        Assert.Equal(AcceptedNotEffective, loaded.Warnings.Select(w => w.Path));
        var providers = loaded.Config.Providers;
        Assert.Equal(
            ProviderTypeModule.all.Select(ProviderTypeModule.wireName).Order(),
            providers.Select(p => ProviderTypeModule.wireName(p.Type)).Order());
        Assert.All(providers.Where(p => ConfigKeysNeeded(p.Type)), p => Assert.NotEmpty(p.Keys));
        Assert.Equal(["anthropic", "zai"], providers.Where(p => p.Enabled).Select(p => p.Name));
    }

    [Fact]
    public void Example_HasEverySectionOfTheSchema()
    {
        var topLevel = File.ReadAllLines(ExamplePath())
            .Where(line => line.Length > 0 && char.IsLetter(line[0]))
            .Select(line => line[..line.IndexOf(':')]);

        Assert.Equal(["server", "security", "routing", "providers", "health", "logging", "grpc", "metrics", "otel", "cache"], topLevel);
    }

    private static bool ConfigKeysNeeded(ProviderType type) => type != ProviderType.Ollama && !ProviderTypeModule.isCloud(type);
}
