using System.Globalization;
using System.Net;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Observability;

/// <summary>The completion line (event 1): every field of the issue, with usage and cost from the answer.</summary>
public sealed class RequestLogTests : IAsyncLifetime
{
    private const string ProviderKey = "sk-fake-provider-key";
    private readonly ShiftedTimeProvider _clock = new();
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        var provider = TestConfig.Provider("fake", _upstream.BaseUrl, keys: [ProviderKey]).WithPricing(("claude-priced-by-config", 1m, 2m));
        _relay = await RelayHost.StartAsync(TestConfig.Relay([provider]), timeProvider: _clock);
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private async Task<(HttpResponseMessage Response, CapturedLogs.LogLine Line)> SendAsync(string body, string? apiKey = "sk-ant-client")
    {
        var response = await _relay.Client.SendAsync(Requests.Messages(body, apiKey: apiKey));
        _ = await response.Content.ReadAsByteArrayAsync();
        var id = response.Headers.GetValues("x-cc-relay-request-id").Single();
        var line = (await _relay.Logs.WaitForAsync(l => l.EventId == 1 && (string?)l.Fields["request_id"] == id)).Single();
        return (response, line);
    }

    [Fact]
    public async Task Stream_LineCarriesKeysModelsUsageCostAndTimings()
    {
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("claude-sonnet-4-6") + Fake.TextBlock(0, "hi") + Fake.MessageEnd(outputTokens: 5));
        };

        var (response, line) = await SendAsync(Requests.StreamingBody);
        using var _ = response;
        var f = line.Fields;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(KeyId.ofSecret("sk-ant-client"), f["client_key_id"]);
        Assert.Equal("fake", f["provider"]);
        Assert.Equal(KeyId.ofSecret(ProviderKey), f["key_id"]);
        Assert.Equal("claude-sonnet-4-6", f["model"]);
        Assert.Equal("claude-sonnet-4-6", f["upstream_model"]);
        Assert.Equal("claude-sonnet-4-6", f["response_model"]);
        Assert.Equal(true, f["stream"]);
        Assert.Equal(200, f["status"]);
        Assert.Equal("ok", f["result"]);
        Assert.Null(f["error_type"]);
        Assert.Equal("end_turn", f["stop_reason"]);
        Assert.Equal(1, f["attempts"]);
        Assert.Equal(9L, f["input_tokens"]);
        Assert.Equal(5L, f["output_tokens"]);
        Assert.Equal(0L, f["cache_read_tokens"]);
        Assert.Equal(0L, f["cache_write_tokens"]);
        Assert.Equal(((9 * 3m) + (5 * 15m)) / 1_000_000m, f["cost_usd"]);
        var duration = (double)f["duration_ms"]!;
        var ttfb = (double)f["ttfb_ms"]!;
        var overhead = (double)f["overhead_ms"]!;
        Assert.InRange(ttfb, 0, duration);
        Assert.InRange(overhead, 0, duration);
        Assert.Equal(overhead, double.Parse(response.Headers.GetValues("x-cc-relay-overhead-ms").Single(), CultureInfo.InvariantCulture), 3);
        Assert.True((long)f["bytes_out"]! > 0);
        Assert.DoesNotContain(ProviderKey, line.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-ant-client", line.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Json_UnknownModel_HasTokensButNoCost()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson(model: "claude-test"));

        var (response, line) = await SendAsync(Requests.PlainBody);
        using var _ = response;

        Assert.Equal("claude-test", line.Fields["response_model"]);
        Assert.Equal(3L, line.Fields["input_tokens"]);
        Assert.Equal(2L, line.Fields["output_tokens"]);
        Assert.Null(line.Fields["cost_usd"]);
        Assert.True(line.Message.Contains(" cost_usd= bytes_in=", StringComparison.Ordinal), line.Message);
    }

    [Fact]
    public async Task Json_ProviderPricing_OverridesTheBuiltInPrices()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson(model: "claude-priced-by-config"));

        var (response, line) = await SendAsync(Requests.PlainBody);
        using var _ = response;

        Assert.Equal(((3 * 1m) + (2 * 2m)) / 1_000_000m, line.Fields["cost_usd"]);
    }

    [Fact]
    public async Task UpstreamError_LineHasItsErrorType_AndUnknownUsage()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 529, """{"type":"error","error":{"type":"overloaded_error","message":"busy"}}""");

        var (response, line) = await SendAsync(Requests.PlainBody);
        using var _ = response;

        Assert.Equal(529, line.Fields["status"]);
        Assert.Equal("upstream_529", line.Fields["result"]);
        Assert.Equal("overloaded_error", line.Fields["error_type"]);
        Assert.Null(line.Fields["input_tokens"]);
        Assert.Null(line.Fields["cost_usd"]);

        // routing retries the only provider up to routing.max_attempts (5); the last 529 is passed through
        Assert.Equal(5, line.Fields["attempts"]);
    }

    [Fact]
    public async Task StreamErrorEvent_LineHasTheEventsErrorType()
    {
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.Event("error", """{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"""));
        };

        var (response, line) = await SendAsync(Requests.StreamingBody);
        using var _ = response;

        Assert.Equal("upstream_error_event", line.Fields["result"]);
        Assert.Equal("overloaded_error", line.Fields["error_type"]);
    }

    [Fact]
    public async Task RelayRejection_HasNoAttempt_AndNoCredentialMeansNoClientKeyId()
    {
        var (response, line) = await SendAsync("""{"max_tokens":1}""", apiKey: null);
        using var _ = response;

        Assert.Equal(400, line.Fields["status"]);
        Assert.Equal("invalid_request_error", line.Fields["error_type"]);
        Assert.Equal(0, line.Fields["attempts"]);
        Assert.Equal("-", line.Fields["client_key_id"]);
        Assert.Equal("-", line.Fields["provider"]);
        Assert.Equal("-", line.Fields["key_id"]);
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task Overhead_ExcludesTheUpstreamWait()
    {
        // the upstream holds its headers back for 10 s of the relay's clock: the relay's overhead cannot include
        // that wait, which lies inside the relay's own wait for the headers
        var held = TimeSpan.FromSeconds(10);
        _upstream.Handler = context =>
        {
            _clock.Advance(held);
            return Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        };

        var (response, line) = await SendAsync(Requests.PlainBody);
        using var _ = response;

        var overhead = (double)line.Fields["overhead_ms"]!;
        var ttfb = (double)line.Fields["ttfb_ms"]!;
        var duration = (double)line.Fields["duration_ms"]!;
        Assert.True(ttfb + 0.01 >= held.TotalMilliseconds, $"ttfb {ttfb} ms, held {held.TotalMilliseconds} ms");
        Assert.True(overhead <= duration - held.TotalMilliseconds + 0.01, $"overhead {overhead} ms, duration {duration} ms, held {held.TotalMilliseconds} ms");
    }
}
