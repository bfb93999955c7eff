using System.Text;
using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Host.Tests.Configuration;

public sealed class TomlConfigReaderTests
{
    private static ConfigNode Read(string toml)
    {
        Assert.True(TomlConfigReader.TryRead(Encoding.UTF8.GetBytes(toml), out var document, out var errors), string.Join("\n", errors));
        return document;
    }

    private static ConfigIssue ReadError(byte[] bytes)
    {
        Assert.False(TomlConfigReader.TryRead(bytes, out _, out var errors));
        return Assert.Single(errors);
    }

    private static ConfigNode Value(ConfigNode mapping, string key) =>
        Assert.IsType<ConfigNode.Mapping>(mapping).Entries.Single(e => e.Key == key).Value;

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    public void TryRead_EmptyText_IsEmptyMapping(string toml)
    {
        var document = Read(toml);

        Assert.Empty(Assert.IsType<ConfigNode.Mapping>(document).Entries);
    }

    [Fact]
    public void TryRead_Values_AreTypedWithPositions()
    {
        var document = Read("""
            [server]
            listen = "127.0.0.1:9000"
            timeout_ms = 60_000
            enable_http2 = true
            """);

        var server = Value(document, "server");
        var listen = Assert.IsType<ConfigNode.Scalar>(Value(server, "listen"));
        Assert.Equal(ScalarValue.NewString("127.0.0.1:9000"), listen.Value);
        Assert.Equal(new Position(2, 10), listen.At);
        Assert.Equal(ScalarValue.NewInteger(60000), Assert.IsType<ConfigNode.Scalar>(Value(server, "timeout_ms")).Value);
        Assert.Equal(ScalarValue.NewBoolean(true), Assert.IsType<ConfigNode.Scalar>(Value(server, "enable_http2")).Value);
    }

    [Fact]
    public void TryRead_SyntaxError_HasLineColumnAndMessage()
    {
        var issue = ReadError(Encoding.UTF8.GetBytes("[server]\nlisten = 127.0.0.1:9000\n"));

        Assert.Equal("(document)", issue.Path);
        Assert.Equal(new Position(2, 15), issue.Position!.Value);
        Assert.StartsWith("TOML syntax error: ", issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_InvalidUtf8_HasLineAndColumn()
    {
        byte[] bytes = [.. "a = 1\nb = \""u8, 0xC3, .. "\"\n"u8];

        var issue = ReadError(bytes);

        Assert.Equal(new Position(2, 6), issue.Position!.Value);
        Assert.Contains("UTF-8", issue.Message, StringComparison.Ordinal);
    }
}
