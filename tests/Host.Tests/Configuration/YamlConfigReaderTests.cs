using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Host.Tests.Configuration;

public sealed class YamlConfigReaderTests
{
    private static ConfigNode Read(string yaml)
    {
        Assert.True(YamlConfigReader.TryRead(yaml, out var document, out var errors), string.Join("\n", errors));
        return document;
    }

    private static ConfigIssue ReadError(string yaml)
    {
        Assert.False(YamlConfigReader.TryRead(yaml, out _, out var errors));
        return Assert.Single(errors);
    }

    private static ConfigNode Value(ConfigNode mapping, string key) =>
        Assert.IsType<ConfigNode.Mapping>(mapping).Entries.Single(e => e.Key == key).Value;

    private static ScalarValue ScalarOf(ConfigNode node) => Assert.IsType<ConfigNode.Scalar>(node).Value;

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    public void TryRead_EmptyText_IsEmptyMapping(string yaml)
    {
        var document = Read(yaml);

        Assert.Empty(Assert.IsType<ConfigNode.Mapping>(document).Entries);
    }

    [Fact]
    public void TryRead_Scalars_KeepStyleAndPosition()
    {
        var document = Read("""
            plain: 0123
            quoted: "60"
            single: 'x'
            block: |
              text
            tagged: !!str 42
            empty:
            """);

        Assert.Equal(ScalarValue.NewPlain("0123"), ScalarOf(Value(document, "plain")));
        Assert.Equal(ScalarValue.NewString("60"), ScalarOf(Value(document, "quoted")));
        Assert.Equal(ScalarValue.NewString("x"), ScalarOf(Value(document, "single")));
        Assert.Equal(ScalarValue.NewString("text\n"), ScalarOf(Value(document, "block")));
        Assert.Equal(ScalarValue.NewString("42"), ScalarOf(Value(document, "tagged")));
        Assert.Equal(ScalarValue.NewPlain(""), ScalarOf(Value(document, "empty")));
        Assert.Equal(new Position(2, 9), ConfigNodeModule.position(Value(document, "quoted")));
        var entry = Assert.IsType<ConfigNode.Mapping>(document).Entries[1];
        Assert.Equal(new Position(2, 1), entry.KeyAt);
    }

    [Fact]
    public void TryRead_NestedListsAndMappings_AreTrees()
    {
        var document = Read("""
            providers:
              - name: a
                keys:
                  - key: k1
                  - key: k2
            """);

        var providers = Assert.IsType<ConfigNode.Sequence>(Value(document, "providers"));
        var keys = Assert.IsType<ConfigNode.Sequence>(Value(Assert.Single(providers.Items), "keys"));
        Assert.Equal(2, keys.Items.Length);
        Assert.Equal(ScalarValue.NewPlain("k2"), ScalarOf(Value(keys.Items[1], "key")));
        Assert.Equal(5, ConfigNodeModule.position(keys.Items[1]).Line);
    }

    [Fact]
    public void TryRead_AnchorsAndAliases_AreResolved()
    {
        var document = Read("""
            common: &limits
              rpm_limit: 60
            first: *limits
            name: &n shared
            again: *n
            """);

        Assert.Equal(Value(document, "common"), Value(document, "first"));
        Assert.Equal(ScalarValue.NewPlain("shared"), ScalarOf(Value(document, "again")));
    }

    [Fact]
    public void TryRead_MergeKey_MergesWithExplicitKeysWinning()
    {
        var document = Read("""
            defaults: &d
              type: zai
              enabled: false
            provider:
              <<: *d
              enabled: true
              name: z
            """);

        var provider = Assert.IsType<ConfigNode.Mapping>(Value(document, "provider"));
        Assert.Equal(["enabled", "name", "type"], provider.Entries.Select(e => e.Key).Order());
        Assert.Equal(ScalarValue.NewPlain("true"), ScalarOf(Value(provider, "enabled")));
    }

    [Fact]
    public void TryRead_DuplicateKey_IsErrorAtSecondKey()
    {
        var error = ReadError("""
            server:
              listen: a:1
              listen: b:2
            """);

        Assert.Equal("server.listen", error.Path);
        Assert.Equal(new Position(3, 3), error.Position!.Value);
        Assert.Contains("duplicate key \"listen\" (first at line 2)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_SyntaxError_HasPositionAndCleanMessage()
    {
        var error = ReadError("server:\n  listen: \"unclosed\n");

        Assert.StartsWith("YAML syntax error: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Idx:", error.Message, StringComparison.Ordinal);
        Assert.True(error.Position!.Value.Line >= 2);
    }

    [Fact]
    public void TryRead_UnknownAlias_IsError()
    {
        var error = ReadError("a: *missing\n");

        Assert.Contains("unknown alias *missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_TwoDocuments_IsError()
    {
        var error = ReadError("a: 1\n---\nb: 2\n");

        Assert.Contains("only one YAML document", error.Message, StringComparison.Ordinal);
        Assert.Equal(2, error.Position!.Value.Line);
    }

    [Fact]
    public void TryRead_ComplexKey_IsError()
    {
        var error = ReadError("? [a, b]\n: 1\n");

        Assert.Contains("mapping key must be a plain string", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_KeysAreNotExpanded()
    {
        var document = Read("\"${HOME}\": 1\n");

        Assert.Equal("${HOME}", Assert.Single(Assert.IsType<ConfigNode.Mapping>(document).Entries).Key);
    }
}
