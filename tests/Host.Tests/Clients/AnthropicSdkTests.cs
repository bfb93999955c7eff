using Anthropic;
using Anthropic.Models.Messages;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Clients;

/// <summary>The official Anthropic C# SDK (13.x, sends <c>Authorization: Bearer</c>) through the relay.</summary>
public sealed class AnthropicSdkTests : IAsyncLifetime
{
    private const string Signature = "EqQBCkYIBxgCKkDsdk-thinking-signature==";
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;
    private AnthropicClient _client = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["upstream-key"])]));
        _client = new AnthropicClient
        {
            BaseUrl = _relay.BaseUrl.ToString().TrimEnd('/'),
            ApiKey = "sk-ant-sdk-client",
            MaxRetries = 0,
            Timeout = TimeSpan.FromSeconds(20),
        };
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static MessageCreateParams Params(bool thinking = false)
    {
        var p = new MessageCreateParams
        {
            Model = "claude-sonnet-4-6",
            MaxTokens = 2048,
            Messages = [new UserMessageParam("What is the weather in Paris?")],
        };
        return thinking ? p with { Thinking = new ThinkingConfigEnabled(1024) } : p;
    }

    [Fact]
    public async Task Streaming_WithThinkingAndToolCall_AggregatesExactly()
    {
        // Arrange: the stream of protocols.md §1.6 — thinking with a signature, then a tool call in two fragments
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("claude-sonnet-4-6"));
            await Fake.WriteAsync(context, Fake.Ping);
            await Fake.WriteAsync(context,
                Fake.Event("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}""")
                + Fake.Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"let me check"}}""")
                + Fake.Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":""" + Fake.Quote(Signature) + "}}")
                + Fake.Event("content_block_stop", """{"type":"content_block_stop","index":0}"""));
            await Fake.WriteAsync(context,
                Fake.Event("content_block_start", """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_5","name":"get_weather","input":{}}}""")
                + Fake.Event("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}""")
                + Fake.Event("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}""")
                + Fake.Event("content_block_stop", """{"type":"content_block_stop","index":1}"""));
            await Fake.WriteAsync(context, Fake.MessageEnd("tool_use", 89));
        };

        // Act
        var events = new List<RawMessageStreamEvent>();
        await foreach (var e in _client.Messages.CreateStreaming(Params(thinking: true)))
        {
            events.Add(e);
        }

        // Assert
        Assert.Equal(11, events.Count);
        var thinking = events.Select(e => e.TryPickContentBlockDelta(out var d) && d.Delta.TryPickSignature(out var s) ? s.Signature : null).Single(s => s is not null);
        Assert.Equal(Signature, thinking);
        var json = string.Concat(events.Select(e => e.TryPickContentBlockDelta(out var d) && d.Delta.TryPickInputJson(out var j) ? j.PartialJson : ""));
        Assert.Equal("""{"city":"Paris"}""", json);
        Assert.True(events[^2].TryPickDelta(out var delta));
        Assert.Equal("tool_use", delta.Delta.StopReason?.Raw());
        var sent = _upstream.Requests.Single();
        Assert.Equal("upstream-key", sent.Header("x-api-key"));
        Assert.Null(sent.Header("authorization"));
        Assert.Contains("\"thinking\"", System.Text.Encoding.UTF8.GetString(sent.Body));
    }

    [Fact]
    public async Task NonStreaming_ReturnsTheUpstreamMessage()
    {
        _upstream.Handler = context =>
        {
            context.Response.Headers["request-id"] = "req_sdk_1";
            return Fake.WriteJsonAsync(context, 200, Fake.MessageJson("bonjour", "claude-sonnet-4-6"));
        };

        var message = await _client.Messages.Create(Params());

        Assert.Equal("msg_1", message.ID);
        Assert.True(message.Content[0].TryPickText(out var text));
        Assert.Equal("bonjour", text.Text);
        Assert.Equal(2, message.Usage.OutputTokens);
    }

    [Fact]
    public async Task CountTokens_IsRelayed()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, """{"input_tokens":2095}""");

        var count = await _client.Messages.CountTokens(new MessageCountTokensParams
        {
            Model = "claude-sonnet-4-6",
            Messages = [new UserMessageParam("hi")],
        });

        Assert.Equal(2095, count.InputTokens);
        Assert.Equal("/v1/messages/count_tokens", _upstream.Requests.Single().PathAndQuery);
    }

    [Fact]
    public async Task UpstreamRateLimit_SurfacesAsTheSdksTypedException()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 429, """{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}""");

        var error = await Assert.ThrowsAsync<Anthropic.Exceptions.AnthropicRateLimitException>(() => _client.Messages.Create(Params()));

        Assert.Contains("slow down", error.Message);
    }
}
