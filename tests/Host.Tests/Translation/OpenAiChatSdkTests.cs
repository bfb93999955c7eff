using Anthropic;
using Anthropic.Models.Messages;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Translation;

/// <summary>The official Anthropic C# SDK through the relay to the strict fake Chat Completions server.</summary>
public sealed class OpenAiChatSdkTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;
    private AnthropicClient _client = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        var provider = TestConfig.Provider(
            "openai",
            _upstream.BaseUrl,
            type: ProviderType.OpenAi,
            keys: ["sk-openai"],
            cloud: CloudSettings.NewOpenAi(new OpenAiSettings(ReasoningField.ReasoningContent, MaxTokensField.MaxTokens, true, ThinkingControl.ThinkingField, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace)));
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
        Model = "deepseek-chat",
        MaxTokens = 2048,
        Thinking = new ThinkingConfigEnabled(1024),
        Messages = [new UserMessageParam("What is the weather in Paris?")],
    };

    [Fact]
    public async Task Streaming_ThinkingAndToolCall_TheSdkReadsEveryEvent()
    {
        // Arrange
        _upstream.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.StreamAsync(
            context,
            FakeOpenAi.Chunk("""{"role":"assistant","reasoning_content":"let me check"}"""),
            FakeOpenAi.Chunk("""{"tool_calls":[{"index":0,"id":"call_5","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}"""),
            FakeOpenAi.Chunk("""{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"""),
            FakeOpenAi.Chunk("{}", "tool_calls"),
            FakeOpenAi.Usage(),
            "[DONE]"), deepSeek: true);

        // Act
        var events = new List<RawMessageStreamEvent>();
        await foreach (var e in _client.Messages.CreateStreaming(Params()))
        {
            events.Add(e);
        }

        // Assert: message_start, thinking (start, delta, signature, stop), tool (start, 2 deltas, stop), message_delta, message_stop
        Assert.Equal(11, events.Count);
        Assert.True(events[0].TryPickStart(out var start));
        // the model the client asked for, not the upstream's "fake-model" (Claude Code keeps thinking only then)
        Assert.Equal("deepseek-chat", start.Message.Model.Raw());
        var thinking = string.Concat(events.Select(e => e.TryPickContentBlockDelta(out var d) && d.Delta.TryPickThinking(out var t) ? t.Thinking : ""));
        Assert.Equal("let me check", thinking);
        var json = string.Concat(events.Select(e => e.TryPickContentBlockDelta(out var d) && d.Delta.TryPickInputJson(out var j) ? j.PartialJson : ""));
        Assert.Equal("""{"city":"Paris"}""", json);
        Assert.True(events[^2].TryPickDelta(out var delta));
        Assert.Equal("tool_use", delta.Delta.StopReason?.Raw());
        Assert.Equal(20, delta.Usage.OutputTokens);
    }

    [Fact]
    public async Task NonStreaming_TheSdkReadsTheTranslatedMessage()
    {
        // Arrange
        _upstream.Handler = FakeOpenAi.Strict((context, _) => Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion("""{"role":"assistant","content":"bonjour"}""")), deepSeek: true);

        // Act
        var message = await _client.Messages.Create(Params());

        // Assert
        Assert.True(message.Content[0].TryPickText(out var text));
        Assert.Equal("bonjour", text.Text);
        Assert.Equal(5, message.Usage.OutputTokens);
        Assert.Equal("end_turn", message.StopReason?.Raw());
    }
}
