using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// A translated target that thinks silently: the relay keeps the client's stream alive with events Claude Code's idle
/// watchdog counts (<c>server.stream_keepalive: events</c>), or with pings only (<c>pings</c>).
/// </summary>
public sealed class KeepAliveTests : TwoUpstreamTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private Task<RelayHost> RelayAsync(KeepAliveMode mode)
    {
        var provider = TestConfig.Provider(
            "a",
            A.BaseUrl,
            type: ProviderType.OpenAi,
            keys: ["sk-openai"],
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "deepseek-chat" },
            cloud: CloudSettings.NewOpenAi(new OpenAiSettings(ReasoningField.ReasoningContent, MaxTokensField.MaxTokens, true, ThinkingControl.ThinkingField, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace)));
        var config = TestConfig.Relay([provider]);
        var server = config.Server;
        config = new RelayConfig(
            new ServerConfig(server.Listen, server.Auth, server.TimeoutMs, server.MaxConcurrent, server.MaxBodyBytes, server.EnableHttp2, server.FirstByteTimeoutMs, server.ShutdownTimeoutMs, mode, server.StreamKeepAliveMs),
            config.Providers, config.Logging, config.Metrics, config.Otel, config.Routing, config.Health, config.Grpc, config.Edge, config.Clients, config.Ledger, config.Pipelines, config.State);
        return RelayHost.StartAsync(config, pingInterval: TimeSpan.FromMilliseconds(100));
    }

    /// <summary>
    /// The fake sends its first chunk (the relay's <c>message_start</c>), is silent until the client has seen
    /// <paramref name="keepAlives"/> keep-alives, then answers. Returns every event the client read.
    /// </summary>
    private async Task<List<string>> SilentThenAnswerAsync(KeepAliveMode mode, Func<string, bool> isKeepAlive, int keepAlives = 2)
    {
        var seenEnough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        A.Handler = FakeOpenAi.Strict(async (context, _) =>
        {
            await FakeOpenAi.StreamAsync(context, FakeOpenAi.Chunk("""{"role":"assistant","content":""}"""));
            await seenEnough.Task.WaitAsync(Bound);
            await Fake.WriteAsync(context, "data: " + FakeOpenAi.Chunk("""{"content":"Hello"}""") + "\n\n");
            await Fake.WriteAsync(context, "data: " + FakeOpenAi.Chunk("{}", "stop") + "\n\ndata: [DONE]\n\n");
        });
        await using var relay = await RelayAsync(mode);
        using var timeout = new CancellationTokenSource(Bound);

        var request = Requests.Messages("""{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        using var response = await relay.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var seen = new List<string>();
        var counted = 0;
        while (await reader.NextAsync(timeout.Token) is { } next)
        {
            seen.Add(next);
            if (isKeepAlive(next) && ++counted == keepAlives)
            {
                seenEnough.TrySetResult();
            }
        }

        return seen;
    }

    private static (string Name, JsonElement Data) Parse(string sse)
    {
        var lines = sse.Split('\n');
        return (lines[0]["event: ".Length..], JsonDocument.Parse(lines[1]["data: ".Length..]).RootElement);
    }

    [Fact]
    public async Task SilentTarget_GetsAnEmptyThinkingBlock_ItsAnswerMovesUpOneIndex()
    {
        // Act: the target says nothing visible until the client has had two keep-alive deltas
        var seen = await SilentThenAnswerAsync(KeepAliveMode.Events, e => e.Contains("\"thinking\":\"\"}}", StringComparison.Ordinal));

        // Assert: message_start, the relay's own thinking block (open while the target is silent), then the answer at index 1
        // (a loaded machine may ping before the first chunk is read: nothing is open then)
        var events = seen.Select(Parse).SkipWhile(e => e.Name == "ping").ToList();
        Assert.Equal("message_start", events[0].Name);
        Assert.Equal("content_block_start", events[1].Name);
        Assert.Equal("thinking", events[1].Data.GetProperty("content_block").GetProperty("type").GetString());
        Assert.Equal(0, events[1].Data.GetProperty("index").GetInt32());
        var keepAlives = events.Skip(2).TakeWhile(e => e.Name == "content_block_delta").ToList();
        Assert.True(keepAlives.Count >= 2);
        Assert.All(keepAlives, e => Assert.Equal("", e.Data.GetProperty("delta").GetProperty("thinking").GetString()));
        Assert.DoesNotContain(events, e => e.Name == "ping");
        var rest = events.Skip(2 + keepAlives.Count).Where(e => e.Name != "content_block_delta" || e.Data.GetProperty("delta").GetProperty("type").GetString() != "thinking_delta").ToList();
        Assert.Equal(["content_block_stop", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"], rest.Select(e => e.Name));
        Assert.Equal(0, rest[0].Data.GetProperty("index").GetInt32());
        Assert.Equal("text", rest[1].Data.GetProperty("content_block").GetProperty("type").GetString());
        Assert.Equal([0, 1, 1, 1], rest.Take(4).Select(e => e.Data.GetProperty("index").GetInt32()));
        Assert.Equal("Hello", rest[2].Data.GetProperty("delta").GetProperty("text").GetString());
    }

    [Fact]
    public async Task PingsOnly_TheSilenceGetsPings_TheAnswerAsTranslated()
    {
        var seen = await SilentThenAnswerAsync(KeepAliveMode.Pings, e => e.StartsWith("event: ping\n", StringComparison.Ordinal));

        var names = seen.Select(e => e.Split('\n')[0]["event: ".Length..]).Where(n => n != "ping").ToList();
        Assert.Equal(["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"], names);
        Assert.True(seen.Count(e => e.StartsWith("event: ping\n", StringComparison.Ordinal)) >= 2);
    }
}
