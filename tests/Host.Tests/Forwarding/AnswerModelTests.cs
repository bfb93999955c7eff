using System.Text;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Forwarding;

/// <summary>
/// A mapped model's answer names the model the client asked for (Claude Code leaves out the thinking of an answer that
/// names another model), as a byte edit of that one string: the thinking and its signature reach the client as they came.
/// </summary>
public sealed class AnswerModelTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    // a signature with the characters a re-serialiser would escape (+ as \u002B), thinking text outside ASCII
    private static readonly string Thinking =
        Fake.Event("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}""")
        + Fake.Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"r\u00e9fl\u00e9chir \ud83d\ude00"}}""")
        + Fake.Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB+/x=="}}""")
        + Fake.Event("content_block_stop", """{"type":"content_block_stop","index":0}""");

    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        var mapped = TestConfig.Provider("mapped", _upstream.BaseUrl, keys: ["upstream-key"], modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "glm-5" });
        _relay = await RelayHost.StartAsync(TestConfig.Relay([mapped]));
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task MappedStream_NamesTheRequestedModel_EveryOtherByteAsItCame()
    {
        // Arrange: the target names itself in message_start, as every Anthropic-compatible server does
        var rest = Fake.Ping + Thinking + Fake.TextBlock(1, "done") + Fake.MessageEnd();
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("glm-5") + rest);
        };
        using var timeout = new CancellationTokenSource(Bound);

        // Act
        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);

        // Assert: the upstream got its own model; the client gets its own, and the rest byte for byte
        Assert.Contains("\"model\":\"glm-5\"", Encoding.UTF8.GetString(Assert.Single(_upstream.Requests).Body), StringComparison.Ordinal);
        Assert.Equal(Fake.MessageStart("claude-sonnet-4-6") + rest, body);
        Assert.Equal("glm-5", response.Headers.GetValues("x-cc-relay-model").Single());
        var line = Assert.Single(await _relay.Logs.RequestLinesAsync()).Fields;
        Assert.Equal("claude-sonnet-4-6", line["model"]);
        Assert.Equal("glm-5", line["upstream_model"]);
        Assert.Equal("glm-5", line["response_model"]);
    }

    [Fact]
    public async Task MappedJsonAnswer_NamesTheRequestedModel_EveryOtherByteAsItCame()
    {
        var answer = Fake.MessageJson("h\\u00e9llo +", model: "glm-5");
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, answer);
        using var timeout = new CancellationTokenSource(Bound);

        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.PlainBody), timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);

        Assert.Equal(Fake.MessageJson("h\\u00e9llo +", model: "claude-sonnet-4-6"), body);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("glm-5", response.Headers.GetValues("x-cc-relay-model").Single());
        Assert.Equal("glm-5", Assert.Single(await _relay.Logs.RequestLinesAsync()).Fields["response_model"]);
    }

    [Fact]
    public async Task UnmappedModel_AnswerAsItCame_NoModelHeader()
    {
        // a model the mapping does not name goes upstream as it is: its answer is not touched, even a dated name
        const string body = """{"model":"claude-opus-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""";
        var stream = Fake.MessageStart("claude-opus-4-6-20260101") + Thinking + Fake.MessageEnd();
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, stream);
        };
        using var timeout = new CancellationTokenSource(Bound);

        using var response = await _relay.Client.SendAsync(Requests.Messages(body), HttpCompletionOption.ResponseHeadersRead, timeout.Token);

        Assert.Equal(stream, await response.Content.ReadAsStringAsync(timeout.Token));
        Assert.False(response.Headers.Contains("x-cc-relay-model"));
    }
}
