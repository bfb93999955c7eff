using Anthropic;
using Anthropic.Models.Messages;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Translation;

/// <summary>The official Anthropic C# SDK through the relay to the strict fake Gemini.</summary>
public sealed class GeminiSdkTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;
    private AnthropicClient _client = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        var provider = TestConfig.Provider(
            "gemini",
            _upstream.BaseUrl,
            type: ProviderType.Gemini,
            keys: ["AIza-gemini"],
            cloud: CloudSettings.NewGemini(new GeminiSettings(GeminiEndpoint.AiStudio, GeminiThinking.Auto, DroppedPolicy.Report)));
        _relay = await RelayHost.StartAsync(TestConfig.Relay([provider]));
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

    private static MessageCreateParams Params() => new()
    {
        Model = "gemini-2.5-flash",
        MaxTokens = 2048,
        Thinking = new ThinkingConfigEnabled(1024),
        Messages = [new UserMessageParam("What is the weather in Paris?")],
    };

    [Fact]
    public async Task Streaming_ThoughtsAndAFunctionCall_TheSdkReadsEveryEvent()
    {
        // Arrange
        _upstream.Handler = FakeGemini.Strict((context, _, _, _) => FakeGemini.StreamAsync(
            context,
            FakeGemini.Chunk("""[{"text":"let me check","thought":true}]"""),
            FakeGemini.Chunk("""[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"}]"""),
            FakeGemini.Chunk("""[{"text":""}]""", "STOP", usage: true)));

        // Act
        var events = new List<RawMessageStreamEvent>();
        await foreach (var e in _client.Messages.CreateStreaming(Params()))
        {
            events.Add(e);
        }

        // Assert: message_start; thinking (start, delta, signature, stop); the carrier (start, signature, stop);
        // the tool (start, delta, stop); message_delta; message_stop
        Assert.Equal(13, events.Count);
        Assert.True(events[0].TryPickStart(out var start));
        // the model the client asked for, not the upstream's "gemini-fake" (Claude Code keeps thinking only then)
        Assert.Equal("gemini-2.5-flash", start.Message.Model.Raw());
        var thinking = string.Concat(events.Select(e => e.TryPickContentBlockDelta(out var d) && d.Delta.TryPickThinking(out var t) ? t.Thinking : ""));
        Assert.Equal("let me check", thinking);
        var signatures = events.Select(e => e.TryPickContentBlockDelta(out var d) && d.Delta.TryPickSignature(out var s) ? s.Signature : null).OfType<string>().ToList();
        Assert.Equal(["cc-relay:gemini:v1:", "cc-relay:gemini:v1:c2ln"], signatures);
        var json = string.Concat(events.Select(e => e.TryPickContentBlockDelta(out var d) && d.Delta.TryPickInputJson(out var j) ? j.PartialJson : ""));
        Assert.Equal("""{"city":"Paris"}""", json);
        Assert.True(events[^2].TryPickDelta(out var delta));
        Assert.Equal("tool_use", delta.Delta.StopReason?.Raw());
        Assert.Equal(25, delta.Usage.OutputTokens);
    }

    [Fact]
    public async Task NonStreaming_TheSdkReadsTheTranslatedMessage()
    {
        // Arrange
        _upstream.Handler = FakeGemini.Strict((context, _, _, _) => Fake.WriteJsonAsync(context, 200, FakeGemini.Chunk("""[{"text":"bonjour"}]""", "STOP", usage: true)));

        // Act
        var message = await _client.Messages.Create(Params());

        // Assert
        Assert.True(message.Content[0].TryPickText(out var text));
        Assert.Equal("bonjour", text.Text);
        Assert.Equal(25, message.Usage.OutputTokens);
        Assert.Equal(40, message.Usage.InputTokens);
        Assert.Equal("end_turn", message.StopReason?.Raw());
    }
}
