using System.Text;
using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Host.Tests.Configuration;

/// <summary>
/// <see cref="ConfigRender"/> against the real YAML reader: what <c>config show</c> prints is YAML, and
/// every quoted value reads back as exactly the string it came from.
/// </summary>
public sealed class ConfigRenderYamlTests
{
    private static readonly string[] Tricky =
    [
        "", "true", "null", "~", "0123", "1e3", "- item", "a: b", "# not a comment", "'single'", "\"double\"",
        "back\\slash", "\\n", "tab\there", "two\nlines", "cr\rlf\r\n", "trailing space ", " leading", "{x}", "[1]",
        "&anchor", "*alias", "!tag", "%directive", "@at", "`tick`", "|", ">", "bell\u0007", "del\u007f",
        "nel\u0085", "ls\u2028ps\u2029", "bom\uFEFF", "\uFFFE\uFFFF", "é 模型 🙂", "${VAR}",
    ];

    private static string ReadBack(string quoted)
    {
        Assert.True(YamlConfigReader.TryRead("value: " + quoted + "\n", out var document, out var errors), string.Join("\n", errors));
        var entry = Assert.Single(Assert.IsType<ConfigNode.Mapping>(document).Entries);
        return Assert.IsType<ScalarValue.String>(Assert.IsType<ConfigNode.Scalar>(entry.Value).Value).Value;
    }

    [Fact]
    public void Quote_TrickyStrings_ReadBackUnchanged()
    {
        Assert.All(Tricky, text => Assert.Equal(text, ReadBack(ConfigRender.quote(text))));
    }

    [Fact]
    public void Quote_RandomStrings_ReadBackUnchanged()
    {
        // Deterministic: a fixed seed, so a failure replays.
        var random = new Random(20260521);
        const string Pool = "aZ09 :#-'\"\\\t\n\r{}[],&*!|>%@`$é模🙂\u0000\u0007\u001b\u007f\u0085\u00a0\u2028\u2029\ufeff";
        var runes = Pool.EnumerateRunes().ToArray();
        for (var i = 0; i < 500; i++)
        {
            var text = new StringBuilder();
            for (var length = random.Next(0, 12); length > 0; length--)
            {
                text.Append(runes[random.Next(runes.Length)].ToString());
            }

            Assert.Equal(text.ToString(), ReadBack(ConfigRender.quote(text.ToString())));
        }
    }

    [Fact]
    public void ToYaml_OfTheDefaults_IsOneWellFormedDocument()
    {
        Assert.True(YamlConfigReader.TryRead(ConfigRender.toYaml(Config.defaults), out var document, out _));
        Assert.Equal(
            ["server", "providers", "logging", "routing", "health", "metrics", "otel", "grpc", "security", "clients", "ledger", "pipelines", "plugins", "state"],
            Assert.IsType<ConfigNode.Mapping>(document).Entries.Select(e => e.Key));
    }
}
